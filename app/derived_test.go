package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestWaitingTimesMoveOutOnUpgrade opens a data directory as the release
// before derived values left it: services whose stored versions carry
// their waiting time inside (a stale one), indexed from it. The first open
// reindexes and recomputes each service's wait beside it, once: reads and
// searches show the true wait, the stale copy is neither found nor
// served (not even by vread or history, though the stored versions are
// left as they were written), and the next open does nothing more.
func TestWaitingTimesMoveOutOnUpgrade(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	cfg := app.Config{Data: dir, BaseURL: "http://127.0.0.1:8080/fhir", Open: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx := context.Background()
	a, err := app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	loc := a.Location
	today := time.Now().In(loc)
	at := func(d int) time.Time {
		return time.Date(today.Year(), today.Month(), today.Day(), 10, 0, 0, 0, loc).AddDate(0, 0, d)
	}
	stale := `{"url":"` + directory.WaitingTime + `","extension":[{"url":"days","valueInteger":99},{"url":"next-slot","valueDateTime":"2020-04-09T09:00:00Z"},` +
		`{"url":"average-days","valueDecimal":99},{"url":"sample","valueInteger":1},{"url":"computed","valueInstant":"2020-01-01T08:00:00.000Z"}]}`
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	var writes []*store.Write
	add := func(typ, id string, v int64, body string) {
		body = fmt.Sprintf(`{"resourceType":%q,"id":%q,"meta":{"versionId":"%d","lastUpdated":%q},%s}`, typ, id, v, t0.Add(time.Duration(v)*time.Minute).Format(fhir.InstantFormat), body)
		// The older release indexed the waiting time from the service.
		idx, err := a.Search.ExtractServed(typ, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		writes = append(writes, &store.Write{Resource: &fhir.Resource{Type: typ, ID: id, Version: v, LastUpdated: t0.Add(time.Duration(v) * time.Minute),
			JSON: []byte(body)}, Index: idx})
	}
	add("HealthcareService", "hs", 1, `"name":"Dermatology","extension":[`+stale+`]`)
	add("HealthcareService", "hs", 2, `"name":"Dermatology clinic","extension":[{"url":"urn:other","valueString":"kept"},`+stale+`]`)
	add("Schedule", "sc", 1, `"actor":[{"reference":"HealthcareService/hs"}]`)
	for i, d := range []int{3, 6} {
		add("Slot", fmt.Sprintf("s%d", i), 1, fmt.Sprintf(`"status":"free","schedule":{"reference":"Schedule/sc"},"start":%q,"end":%q`,
			at(d).Format(time.RFC3339), at(d).Add(15*time.Minute).Format(time.RFC3339)))
	}
	err = a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, w := range writes {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	// As the older release left it: no record of the adoption, another
	// index version.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM records WHERE kind = 'migration'", "DELETE FROM derived",
		"UPDATE index_meta SET value = 'older-release' WHERE key = 'version'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	logs.Reset()
	a, err = app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a.Handler())
	get := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(ts.URL + "/fhir" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	ids := func(path string) string {
		t.Helper()
		var out []string
		entries, _ := get(path)["entry"].([]any)
		for _, e := range entries {
			out = append(out, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
		}
		return strings.Join(out, ",")
	}
	waitIn := func(what string, m map[string]any) string {
		t.Helper()
		raw, _ := json.Marshal(m)
		n := strings.Count(string(raw), directory.WaitingTime)
		w, ok := directory.ReadWait(raw, time.Now())
		switch {
		case n == 0:
			return "none"
		case n > 1:
			t.Errorf("%s: %d waiting times: %s", what, n, raw)
		case !ok:
			return "no slot"
		}
		return fmt.Sprint(w.Days)
	}
	if want := `"msg":"waiting times recomputed beside their services","services":1`; !strings.Contains(logs.String(), want) {
		t.Errorf("the upgrade's log lacks %s:\n%s", want, logs.String())
	}
	for _, tc := range []struct{ what, got, want string }{
		{"read", waitIn("read", get("/HealthcareService/hs")), "3"},
		{"vread 2", waitIn("vread", get("/HealthcareService/hs/_history/2")), "none"},
		{"history", waitIn("history", get("/HealthcareService/hs/_history")), "none"},
		{"waiting-time=99", ids("/HealthcareService?waiting-time=99"), ""},
		{"next-free-slot in 2020", ids("/HealthcareService?next-free-slot=2020-04-09"), ""},
		{"waiting-time=3", ids("/HealthcareService?waiting-time=3"), "hs"},
		{"the other extension", fmt.Sprint(strings.Contains(fmt.Sprint(get("/HealthcareService/hs")["extension"]), "urn:other")), "true"},
	} {
		if tc.got != tc.want {
			t.Errorf("after the upgrade, %s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	// The stored versions stay as written.
	if v, err := a.Store.ReadVersion(ctx, "HealthcareService", "hs", 2); err != nil || !strings.Contains(string(v.JSON), `"valueInteger":99`) {
		t.Errorf("stored version 2 = %s, %v; want it as written", v.JSON, err)
	}
	if cur, err := a.Store.Read(ctx, "HealthcareService", "hs"); err != nil || cur.Version != 2 {
		t.Errorf("the upgrade wrote a version of the service: %v, %v", cur, err)
	}
	ts.Close()
	a.Close()

	logs.Reset()
	a, err = app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if strings.Contains(logs.String(), "waiting times recomputed") || strings.Contains(logs.String(), "reindex") {
		t.Errorf("the second open did the upgrade again:\n%s", logs.String())
	}
}
