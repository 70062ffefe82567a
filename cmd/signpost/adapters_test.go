package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/store"
)

// TestAdaptersCommand: signpost adapters status, dead-letters, replay and
// discard against the real server (authorisation on, a PAS instance whose
// PAS is down, dead letters in the outbox), with the operator's token by
// flag or SIGNPOST_TOKEN; errors come back with the server's reason.
func TestAdaptersCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	f, err := adapters.Parse([]byte(`adapters:
  - name: pas-rh8
    kind: hl7v2-pas
    principal: {role: provider, organization: ` + devserver.DemoProvider + `}
    settings:
      send: ` + down + `
      services: [hs-pas]
      pas_number_system: https://harbour.example/Id/pas-number
      mode: signpost-confirmed
`))
	if err != nil {
		t.Fatal(err)
	}
	a, ts := apptest.New(t, app.Config{Auth: true, Adapters: f})
	base := ts.URL + "/fhir"
	tok, err := devserver.MintToken(a.Config.Data, devserver.TokenOptions{Client: devserver.ClientOperator})
	if err != nil {
		t.Fatal(err)
	}
	// Two dead letters for "gone", an instance no longer configured (no
	// dispatcher claims its messages), the second holding a later message.
	ctx := context.Background()
	now := time.Now()
	ids := map[string]int64{}
	err = a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, m := range []store.Message{{Key: "Appointment/a", ControlID: "c1"}, {Key: "Appointment/b", ControlID: "c2"}, {Key: "Appointment/b", ControlID: "c3"}} {
			m.Destination, m.Payload, m.Created = "gone", []byte("MSH|"), now.Add(-2*time.Hour)
			id, err := tx.(store.OutboxTx).Enqueue(ctx, m)
			if err != nil {
				return err
			}
			ids[m.ControlID] = id
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ob := a.Store.(store.Outbox)
	claimed, err := ob.Claim(ctx, "gone", now, time.Minute, 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	for _, q := range claimed {
		if err := ob.DeadLetter(ctx, q.ID, q.Claim, "rejected: AR no such clinic", now); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := runAdapters(ctx, &out, args)
		return out.String(), err
	}
	flags := []string{"--url", base, "--token", tok}
	for _, tt := range []struct {
		name string
		args []string
		want []string // regular expressions the output must match
	}{
		{"status", append([]string{"status"}, flags...), []string{
			`(?m)^ADAPTER\s+KIND\s+STATE\s+PENDING\s+IN FLIGHT\s+DEAD\s+OLDEST WAITING$`,
			`(?m)^pas-rh8\s+hl7v2-pas\s+up\s+0\s+0\s+0\s+-$`,
			`(?m)^gone\s+-\s+stopped\s+1\s+0\s+2\s+2h0m\d+s$`,
			`(?m)^gone: not in the configuration`,
			`kept 720h0m0s`}},
		{"dead letters", append([]string{"dead-letters"}, flags...), []string{
			`(?m)^ID\s+ADAPTER\s+KEY\s+CONTROL ID\s+ATTEMPTS\s+DEAD SINCE\s+REASON$`,
			fmt.Sprintf(`(?m)^%d\s+gone\s+Appointment/a\s+c1\s+1\s+\S+\s+rejected: AR no such clinic$`, ids["c1"]),
			fmt.Sprintf(`(?m)^%d\s+gone\s+Appointment/b\s+c2\s+1\s+`, ids["c2"])}},
		{"dead letters of one adapter, flags first", append(append([]string{"dead-letters"}, flags...), "--adapter", "pas-rh8"), []string{`^no dead letters\n$`}},
		{"replay", append([]string{"replay", fmt.Sprint(ids["c1"])}, flags...), []string{fmt.Sprintf(`^dead letter %d: pending\n$`, ids["c1"])}},
		{"discard, the id after the flags", append(append([]string{"discard"}, flags...), "--reason", "booked by hand", fmt.Sprint(ids["c2"])),
			[]string{fmt.Sprintf(`^dead letter %d: discarded\n$`, ids["c2"])}},
		{"dead letters after", append([]string{"dead-letters"}, flags...), []string{`^no dead letters\n$`}},
	} {
		out, err := run(tt.args...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, w := range tt.want {
			if !regexp.MustCompile(w).MatchString(out) {
				t.Errorf("%s: output\n%s\ndoes not match %s", tt.name, out, w)
			}
		}
	}
	// The discard let c3 flow; the replay made c1 pending again.
	if got, err := ob.Claim(ctx, "gone", time.Now(), time.Minute, 10); err != nil || len(got) != 2 || got[0].ControlID != "c1" || got[1].ControlID != "c3" {
		t.Errorf("after replay and discard Claim = %+v, %v; want c1, c3", got, err)
	}

	t.Setenv("SIGNPOST_TOKEN", tok)
	t.Setenv("SIGNPOST_URL", base)
	if out, err := run("status"); err != nil || !strings.Contains(out, "pas-rh8") {
		t.Errorf("status with SIGNPOST_TOKEN and SIGNPOST_URL: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: signpost adapters"},
		{"unknown command", []string{"restart"}, `unknown command "restart"`},
		{"replay without id", []string{"replay"}, "which dead letter?"},
		{"replay of an unknown id", []string{"replay", "999999"}, "$adapter-replay: 404 Not Found: outbox message 999999 is not known"},
		{"discard of a message not dead", []string{"discard", fmt.Sprint(ids["c3"])}, "409 Conflict"},
		{"replay, id not a number", []string{"replay", "c1"}, "400 Bad Request: id must be a dead letter's id"},
		{"a token of another role", []string{"status", "--token", mustToken(t, a, devserver.ClientProvider)}, "403 Forbidden"},
		{"no server", []string{"status", "--url", "http://" + down + "/fhir"}, "connection refused"},
	} {
		if _, err := run(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	t.Setenv("SIGNPOST_TOKEN", "")
	if _, err := run("status"); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("status without a token: %v", err)
	}
}

// mustToken mints a token for client with the client's scopes.
func mustToken(t *testing.T, a *app.App, client string) string {
	t.Helper()
	tok, err := devserver.MintToken(a.Config.Data, devserver.TokenOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
