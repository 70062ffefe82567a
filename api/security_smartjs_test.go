package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// smartJS is the Node project with the SMART on FHIR JavaScript client.
const smartJS = "../test/smart-js"

// TestSmartJSStandaloneLaunch is the reference SMART client, fhirclient
// from npm (its Node adapter), completing a standalone launch against the
// embedded authorisation server: discovery, /authorize with PKCE S256, the
// patient picker (driven with plain HTTP by test/smart-js/launch.mjs), the
// code exchange, then reading patient A's appointments and failing to
// delete one with its read-only scopes. It needs Node and
// `npm ci --prefix test/smart-js` (.ci/run does both); without Node it is
// skipped, and without the installed client it is skipped locally but
// fails under CI.
func TestSmartJSStandaloneLaunch(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the fhirclient launch test needs Node 18+ and `npm ci --prefix test/smart-js`")
	}
	if _, err := os.Stat(filepath.Join(smartJS, "node_modules", "fhirclient", "package.json")); err != nil {
		msg := "fhirclient is not installed: run `npm ci --prefix test/smart-js`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := newSecureServer(t, app.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(smartJS, "launch.mjs"), s.base, "pat-a")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node launch.mjs: %v\nstderr: %s\nstdout: %s", err, stderr.String(), stdout.String())
	}
	var got struct {
		Patient      string `json:"patient"`
		Scope        string `json:"scope"`
		FHIRUser     string `json:"fhirUser"`
		Appointments []struct {
			ID          string `json:"id"`
			Description string `json:"description"`
		} `json:"appointments"`
		DeleteStatus int `json:"deleteStatus"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("launch.mjs printed %q: %v", stdout.String(), err)
	}
	if got.Patient != "pat-a" {
		t.Errorf("launch context patient = %q, want pat-a", got.Patient)
	}
	if !strings.Contains(got.Scope, "patient/*.rs") {
		t.Errorf("granted scope = %q, want patient/*.rs in it", got.Scope)
	}
	if !strings.HasSuffix(got.FHIRUser, "Patient/pat-a") { // fhirclient shortens it to Type/id
		t.Errorf("fhirUser = %q, want Patient/pat-a", got.FHIRUser)
	}
	var ids []string
	for _, a := range got.Appointments {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	if want := []string{"appt-a", "appt-ab"}; !slices.Equal(ids, want) {
		t.Errorf("appointments read = %v, want %v", ids, want)
	}
	if bytes.Contains(stdout.Bytes(), []byte(secret)) {
		t.Errorf("the client received patient B's data: %s", stdout.String())
	}
	if got.DeleteStatus != 403 {
		t.Errorf("DELETE with read-only scopes: status %d, want 403", got.DeleteStatus)
	}
}
