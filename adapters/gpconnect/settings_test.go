package gpconnect_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/adaptertest"
	_ "github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/write"
)

// good is a gpconnect instance's settings that Build accepts.
const good = `ods_code: A20047
endpoint: https://gpconnect.practice.example/A20047/STU3/1/gpconnect
consumer_asid: "200000000359"
practice_asid: "918999198738"
services: [gp-a20047-appointments]`

// file is an adapters file with one gpconnect instance of settings.
func file(settings string) string {
	s := "adapters:\n  - name: gp-a20047\n    kind: gpconnect\n    principal: {role: provider, organization: A20047}\n    settings:\n"
	for _, l := range strings.Split(settings, "\n") {
		s += "      " + l + "\n"
	}
	return s
}

// TestSettingsErrors: a gpconnect instance's settings are validated when
// the server starts, each problem reported through the framework with
// its line and path; the documented example (with real certificate
// files) is accepted.
func TestSettingsErrors(t *testing.T) {
	t.Parallel()
	a, _ := apptest.New(t, app.Config{})
	wp := write.New(a.Store, a.Search)
	wp.SetOrder(app.RuleOrder())
	base := adapters.Env{Writes: wp, Booking: a.Booking, Referral: a.Referral}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tt := range []struct {
		name, settings string
		want           []string
	}{
		{"nothing", "{}", []string{"adapters[0].settings.ods_code: is required", "adapters[0].settings.endpoint: is required",
			"adapters[0].settings.consumer_asid: is required", "adapters[0].settings.practice_asid: is required", "adapters[0].settings.services: is required"}},
		{"unknown setting", good + "\npoll_intervall: 5m", []string{"11: adapters[0].settings.poll_intervall: unknown field"}},
		{"bad endpoint", strings.Replace(good, "https://gpconnect.practice.example/A20047/STU3/1/gpconnect", "gpconnect.practice.example", 1), []string{"7: adapters[0].settings.endpoint:"}},
		{"bad ASID", strings.Replace(good, `"918999198738"`, "ninety", 1), []string{"9: adapters[0].settings.practice_asid:"}},
		{"bad ODS code", strings.Replace(good, "ods_code: A20047", "ods_code: A-20047", 1), []string{"6: adapters[0].settings.ods_code:"}},
		{"bad duration", good + "\ntimeout: soon", []string{"11: adapters[0].settings.timeout: \"soon\" is not a duration"}},
		{"horizon too far", good + "\nhorizon_days: 400", []string{"11: adapters[0].settings.horizon_days: does not satisfy lte=366"}},
		{"bad organisation type", good + "\norganisation_type: hospital", []string{"11: adapters[0].settings.organisation_type: must be one of"}},
		{"category to an unknown service", good + "\ncategories: {Minor surgery: other}", []string{"settings.categories.Minor surgery: \"other\" is not one of settings.services"}},
		{"TLS without key", good + "\ntls: {cert: " + missing + "}", []string{"adapters[0].settings.tls.key: is required"}},
		{"TLS files missing", good + "\ntls: {cert: " + missing + ", key: " + missing + "}", []string{"settings.tls: open " + missing}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := adapters.Parse([]byte(file(tt.settings)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = adapters.Build(f, base)
			if err == nil {
				t.Fatalf("Build succeeded on\n%s", file(tt.settings))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
		})
	}

	// The documented example, its certificate files made.
	doc, err := os.ReadFile("../../docs/gpconnect.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/gpconnect.md has no YAML example")
	}
	dir := t.TempDir()
	cert, key := adaptertest.SelfSignedFiles(t, dir)
	ca := cert
	example := strings.NewReplacer("/etc/signpost/gpconnect-client.pem", cert, "/etc/signpost/gpconnect-client.key", key,
		"/etc/signpost/spine-ca.pem", ca).Replace(string(m[1]))
	f, err := adapters.Parse([]byte(example))
	if err != nil {
		t.Fatalf("Parse of the documented example: %v", err)
	}
	if _, err := adapters.Build(f, base); err != nil {
		t.Errorf("Build of the documented example: %v", err)
	}
}
