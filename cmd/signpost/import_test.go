package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
)

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	data := fs.String("data", "", "")
	batch := fs.Int("batch", 1, "")
	pos, err := parseInterspersed(fs, []string{"a.ndjson", "--data", "/d", "b.ndjson", "--batch=7", "c.ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%v %s %d", pos, *data, *batch), "[a.ndjson b.ndjson c.ndjson] /d 7"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestImport loads a generated region with the import command, then again
// (every resource becomes version 2), and searches it through the store.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "region.ndjson")
	var buf bytes.Buffer
	n := 0
	err := synth.Generate(synth.Config{Seed: 3, Slots: 1200, Patients: 50, Appointments: 5, SlotsPerSchedule: 100}, func(r synth.Resource) error {
		n++
		buf.Write(r.JSON)
		return buf.WriteByte('\n')
	})
	if err != nil {
		t.Fatal(err)
	}
	// One resource without an id and one in a shape the fast path leaves
	// to the general one.
	buf.WriteString(`{"resourceType":"Patient","name":[{"family":"Okafor"}]}` + "\n")
	buf.WriteString(`{"meta":{"tag":[{"code":"x"}]},"id":"late","resourceType":"Patient"}` + "\n")
	n += 2
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for round := int64(1); round <= 2; round++ {
		if err := importCmd([]string{file, "--data", data, "--quiet", "--batch", "500"}); err != nil {
			t.Fatalf("import round %d: %v", round, err)
		}
		a, err := app.New(app.Config{Data: data, Addr: "127.0.0.1:8080", Open: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		count := func(qs string) int {
			t.Helper()
			typ, raw, _ := strings.Cut(qs, "?")
			params, _ := url.ParseQuery(raw)
			params.Set("_total", "accurate")
			q, err := a.Search.Parse(typ, params, search.ParseOptions{Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			page, err := a.Store.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return page.Total
		}
		tests := []struct {
			query string
			want  int
		}{
			{"Slot", 1200},
			{"Patient", 50 + 1 + 1 + int(round) - 1}, // the id-less patient is new each round
			{"Patient?identifier=" + url.QueryEscape(synth.NHSNumberSystem+"|"+synth.NHSNumber(7)), 1},
			{"Patient?_tag=x", 1},
			{"Slot?schedule=Schedule/sch-00002&start=ge2026-03-02", 100},
		}
		for _, tt := range tests {
			if got := count(tt.query); got != tt.want {
				t.Errorf("round %d: %s: %d, want %d", round, tt.query, got, tt.want)
			}
		}
		res, err := a.Store.Read(ctx, "Slot", "slot-0000007")
		if err != nil || res.Version != round || !bytes.Contains(res.JSON, []byte(`"meta":{"versionId":"`+fmt.Sprint(round)+`"`)) {
			t.Errorf("round %d: Slot/slot-0000007 = %v, %v; want version %d with meta", round, res, err, round)
		} else if !bytes.HasPrefix(res.JSON, []byte(`{"resourceType":"Slot","id":"slot-0000007","meta":`)) {
			t.Errorf("round %d: stored %s", round, res.JSON)
		}
		a.Close()
	}
}
