package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/auth/devserver"
)

// writeFeed writes content to a file called name in a temporary directory.
func writeFeed(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPASFeedCommand: signpost pas-feed uploads a file to $pas-slot-feed
// with the token in SIGNPOST_TOKEN (or --token) and prints what changed;
// a refused feed is an error, with each bad row's line printed; the
// format comes from the extension or --format.
func TestPASFeedCommand(t *testing.T) {
	a, base, _, _ := demoPASApp(t)
	mint := func(opts devserver.TokenOptions) string {
		tok, err := devserver.MintToken(a.Config.Data, opts)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	provider := mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider})
	day := time.Now().In(a.Location).AddDate(0, 0, 20)
	at := func(h int) string {
		return time.Date(day.Year(), day.Month(), day.Day(), h, 0, 0, 0, a.Location).Format(time.RFC3339)
	}
	good := fmt.Sprintf("clinic,pas_slot_id,start,end,status\nKB-CARD,CLI-1,%s,%s,free\nKB-CARD,CLI-2,%s,%s,busy\n", at(17), at(18), at(18), at(19))
	ndjson := fmt.Sprintf(`{"clinic":"KB-CARD","pas_slot_id":"CLI-1","start":%q,"end":%q,"status":"free"}`+"\n", at(17), at(18))
	bad := fmt.Sprintf("clinic,pas_slot_id,start,end,status\nKB-CARD,CLI-3,%s,%s,free\nKB-CARD,CLI-4,%s,%s,free\n", at(17), at(18), at(19), at(18))
	cases := []struct {
		name    string
		env     string // SIGNPOST_TOKEN
		args    []string
		file    string
		content string
		wantErr string
		want    []string
	}{
		{name: "CSV", env: provider, file: "slots.csv", content: good,
			want: []string{"demo-pas-kingsbridge: 2 rows: 2 created, 0 updated, 0 unchanged, 0 skipped, 0 rejected, 0 withdrawn"}},
		{name: "the same again", args: []string{"--token", provider}, file: "slots.csv", content: good,
			want: []string{"2 rows: 0 created, 0 updated, 2 unchanged"}},
		{name: "NDJSON by --format", env: provider, args: []string{"--format", "ndjson"}, file: "slots.txt", content: ndjson,
			want: []string{"1 rows: 0 created, 0 updated, 1 unchanged"}},
		{name: "a bad row", env: provider, file: "bad.csv", content: bad, wantErr: "refused (422",
			want: []string{"error: line 3: end"}},
		{name: "another trust", env: mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: "other", Org: "RXX99", Role: "provider"}),
			file: "slots.csv", content: good, wantErr: "refused (403"},
		{name: "no format", env: provider, file: "slots.txt", content: good, wantErr: "--format"},
		{name: "no adapter", env: provider, args: []string{"--adapter", ""}, file: "slots.csv", content: good, wantErr: "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SIGNPOST_TOKEN", c.env)
			var out bytes.Buffer
			args := append([]string{"--url", base, "--adapter", demoPASInstance}, c.args...)
			err := runPASFeed(append(args, writeFeed(t, c.file, c.content)), &out)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q; printed:\n%s", err, c.wantErr, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("printed %q, want %q", out.String(), w)
				}
			}
		})
	}
}

// TestServeDemoPAS: the binary's serve --demo starts the stand-in and the
// adapter instance (its banner, the feed and the SIU^S12 are printed
// before it serves), and the binary's pas-feed uploads to it with a token
// from the binary's token command.
func TestServeDemoPAS(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data, "--demo")
	log := p.log.String()
	for _, want := range []string{"demo PAS (docs/pas.md)", "Signpost's adapter demo-pas-kingsbridge listens for the PAS on 127.0.0.1:",
		"demo PAS → slot feed of clinic KB-CARD (mode full): 40 rows: 40 created", "demo PAS → SIU^S12 DEMO-S12-KB-CARD-"} {
		if !strings.Contains(log, want) {
			t.Errorf("serve --demo did not print %q", want)
		}
	}
	tok := exec.Command(bin, "token", "--data", data, "--client", devserver.ClientProvider, "--scope", "system/*.cruds")
	tok.Env = withoutSignpostEnv(os.Environ())
	token, err := tok.Output()
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().AddDate(0, 0, 21).UTC()
	start := time.Date(day.Year(), day.Month(), day.Day(), 18, 0, 0, 0, time.UTC)
	file := writeFeed(t, "slots.csv", fmt.Sprintf("clinic,pas_slot_id,start,end,status\nKB-CARD,BIN-1,%s,%s,free\n",
		start.Format(time.RFC3339), start.Add(30*time.Minute).Format(time.RFC3339)))
	feed := exec.Command(bin, "pas-feed", "--url", p.base+"/fhir", "--adapter", demoPASInstance, file)
	feed.Env = append(withoutSignpostEnv(os.Environ()), "SIGNPOST_TOKEN="+strings.TrimSpace(string(token)))
	out, err := feed.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 rows: 1 created") {
		t.Errorf("pas-feed: %v\n%s", err, out)
	}
}
