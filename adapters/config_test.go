package adapters_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/write"
)

// rh8 is the example, "PAS of trust RH8", as docs/adapters.md
// shows it.
const rh8 = `# PAS of trust RH8
retention: 720h
adapters:
  - name: pas-rh8
    kind: hl7v2-pas
    principal:
      role: provider
      organization: RH8
    settings:
      listen: 127.0.0.1:2575
      allow: [127.0.0.1, 10.1.2.3]
      send: pas.example:2576
      services: [rh8-cardiology, rh8-dermatology]
      clinics: {CARD1: rh8-cardiology-clinic}
      pas_number_system: https://harbour.example/Id/pas-number
      mode: pas-confirmed
      version: 2.4
      ack_timeout: 30s
      max_attempts: 10
`

// rh8JSON is rh8 in JSON.
const rh8JSON = `{
  "retention": "720h",
  "adapters": [
    {
      "name": "pas-rh8",
      "kind": "hl7v2-pas",
      "principal": {"role": "provider", "organization": "RH8"},
      "settings": {
        "listen": "127.0.0.1:2575",
        "allow": ["127.0.0.1", "10.1.2.3"],
        "send": "pas.example:2576",
        "services": ["rh8-cardiology", "rh8-dermatology"],
        "clinics": {"CARD1": "rh8-cardiology-clinic"},
        "pas_number_system": "https://harbour.example/Id/pas-number",
        "mode": "pas-confirmed",
        "version": "2.4",
        "ack_timeout": "30s",
        "max_attempts": 10
      }
    }
  ]
}
`

// TestParseGood: the documented example, in YAML and in JSON, reads the
// same; an empty file enables nothing; the retention defaults.
func TestParseGood(t *testing.T) {
	for name, src := range map[string]string{"yaml": rh8, "json": rh8JSON} {
		f, err := adapters.Parse([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(f.Adapters) != 1 || f.Adapters[0].Name != "pas-rh8" || f.Adapters[0].Kind != pas.Kind ||
			f.Adapters[0].Principal != (adapters.PrincipalConfig{Role: "provider", Organization: "RH8"}) ||
			time.Duration(f.Retention) != 720*time.Hour {
			t.Errorf("%s: %+v", name, f)
		}
		// The settings are the kind's; they reach it as JSON, the
		// YAML's 2.4 as the string "2.4".
		var set pas.Settings
		if err := adapters.Decode(f.Adapters[0].Settings, &set); err != nil {
			t.Fatalf("%s: settings: %v", name, err)
		}
		if set.Version != "2.4" || set.Mode != pas.ModePASConfirmed || len(set.Allow) != 2 || set.Clinics["CARD1"] != "rh8-cardiology-clinic" ||
			time.Duration(set.AckTimeout) != 30*time.Second || set.MaxAttempts != 10 {
			t.Errorf("%s: settings %+v", name, set)
		}
	}
	for _, src := range []string{"", "# nothing yet\n", "adapters: []\n", "{}"} {
		f, err := adapters.Parse([]byte(src))
		if err != nil || len(f.Adapters) != 0 {
			t.Errorf("Parse(%q) = %+v, %v; want no adapters", src, f, err)
		}
	}
}

// instance is a one-instance YAML file with the given lines (indented
// under the instance) and settings lines.
func instance(fields, settings string) string {
	s := "adapters:\n  - name: pas-rh8\n    kind: hl7v2-pas\n"
	for _, l := range strings.Split(strings.TrimSpace(fields), "\n") {
		if l != "" {
			s += "    " + l + "\n"
		}
	}
	s += "    settings:\n"
	for _, l := range strings.Split(strings.TrimSpace(settings), "\n") {
		if l != "" {
			s += "      " + l + "\n"
		}
	}
	return s
}

const (
	provider = "principal: {role: provider, organization: RH8}"
	listen   = "listen: 127.0.0.1:2575\nallow: [127.0.0.1]\nservices: [hs-1]\npas_number_system: https://harbour.example/Id/pas-number\nmode: signpost-confirmed"
)

// TestParseErrors: each mistake in a file is reported with its line and
// its path in the file, and says what is wanted.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      []string // each must be in the error
	}{
		{"unknown top-level field", "adapter:\n  - name: x\n", []string{"1: adapter: unknown field; the fields here are retention, adapters"}},
		{"unknown instance field", instance(provider+"\nsetings: {}", listen), []string{"5: adapters[0].setings: unknown field", "name, kind, principal, settings"}},
		{"unknown principal field", instance("principal: {role: provider, org: RH8}", listen),
			[]string{"4: adapters[0].principal.org: unknown field; the fields here are role, organization"}},
		{"bad name", strings.Replace(instance(provider, listen), "pas-rh8", "PAS_RH8", 1),
			[]string{"2: adapters[0].name: must be lower-case letters and digits, in words joined by hyphens", `"PAS_RH8"`}},
		{"name too long", strings.Replace(instance(provider, listen), "pas-rh8", strings.Repeat("a", 65), 1), []string{"2: adapters[0].name: must be at most 64 long"}},
		{"missing name", strings.Replace(instance(provider, listen), "- name: pas-rh8\n    kind", "- kind", 1), []string{"2: adapters[0].name: is required"}},
		{"missing kind", strings.Replace(instance(provider, listen), "    kind: hl7v2-pas\n", "", 1), []string{"2: adapters[0].kind: is required"}},
		{"bad role", instance("principal: {role: admin, organization: RH8}", listen),
			[]string{"4: adapters[0].principal.role: must be one of", `"provider"`, `(it is "admin")`}},
		{"the operator role acts for nobody", instance("principal: {role: operator, organization: RH8}", listen), []string{"adapters[0].principal.role: must be one of"}},
		{"the patient role acts for nobody", instance("principal: {role: patient, organization: RH8}", listen), []string{"adapters[0].principal.role: must be one of"}},
		{"missing principal", instance("", listen), []string{"adapters[0].principal.role: is required", "adapters[0].principal.organization: is required"}},
		{"missing organisation", instance("principal:\n  role: provider", listen), []string{"4: adapters[0].principal.organization: is required"}},
		{"bad organisation", instance("principal: {role: provider, organization: R-H8}", listen), []string{"adapters[0].principal.organization: must be letters and digits only"}},
		{"duplicate names", instance(provider, listen) + strings.TrimPrefix(instance(provider, listen), "adapters:\n"),
			[]string{`11: adapters[1].name: "pas-rh8" is used twice (adapters[0] has it too)`}},
		{"a list for a string", strings.Replace(instance(provider, listen), "kind: hl7v2-pas", "kind: [hl7v2-pas]", 1),
			[]string{"3: adapters[0].kind: a string is expected here, not list"}},
		{"a string for the list", "adapters: pas-rh8\n", []string{"1: adapters: a list is expected here, not \"pas-rh8\""}},
		{"bad retention", "retention: forever\nadapters: []\n", []string{`1: retention: "forever" is not a duration such as "720h"`}},
		{"retention a number", "retention: 720\n", []string{"1: retention: a duration is a string"}},
		{"retention too short", "retention: 10m\n", []string{"1: retention: 10m0s is shorter than 1h0m0s"}},
		{"not YAML", "adapters: [\n", []string{"not valid YAML or JSON"}},
		{"not a mapping", "- pas-rh8\n", []string{"1: the configuration must be a mapping (key: value), not a list"}},
		{"every problem at once", instance("principal: {role: admin}", listen),
			[]string{"adapters[0].principal.role: must be one of", "adapters[0].principal.organization: is required"}},
		// JSON is YAML: its lines are reported too.
		{"JSON: unknown field", "{\n  \"adapters\": [\n    {\"name\": \"pas-rh8\", \"kind\": \"hl7v2-pas\", \"principle\": {}}\n  ]\n}",
			[]string{"3: adapters[0].principle: unknown field"}},
		{"JSON: bad role", "{\"adapters\": [\n{\"name\": \"pas-rh8\", \"kind\": \"hl7v2-pas\",\n \"principal\": {\"role\": \"root\", \"organization\": \"RH8\"}}]}",
			[]string{"3: adapters[0].principal.role: must be one of"}},
		{"JSON: duplicate names", `{"adapters": [{"name": "a", "kind": "k", "principal": {"role": "provider", "organization": "RH8"}},
{"name": "a", "kind": "k", "principal": {"role": "provider", "organization": "RH8"}}]}`, []string{`2: adapters[1].name: "a" is used twice`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := adapters.Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded on\n%s", tt.src)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q; the file:\n%s", err, w, tt.src)
				}
			}
		})
	}
}

// TestLoadNamesTheFile: Load's errors start FILE:LINE:, one problem a line.
func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapters.yaml")
	if err := os.WriteFile(path, []byte(instance("principal: {role: admin}", listen)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := adapters.Load(path)
	want := path + ":4: adapters[0].principal.role: must be one of"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "\n"+path+":4: adapters[0].principal.organization: is required") {
		t.Errorf("Load = %v\nwant it to start %q, a line per problem", err, want)
	}
	if _, err := adapters.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file = %v", err)
	}
}

// TestBuildErrors: the settings an instance's kind refuses are reported
// when the server is assembled (before anything starts), under
// adapters[i].settings with their line: the hl7v2-pas kind's own rules.
func TestBuildErrors(t *testing.T) {
	a, _ := apptest.New(t, app.Config{})
	wp := write.New(a.Store, a.Search) // a write path of its own, for the adapters' rule
	wp.SetOrder(app.RuleOrder())
	base := adapters.Env{Writes: wp, Booking: a.Booking, Referral: a.Referral}
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, tt := range []struct {
		name, settings string
		want           []string
	}{
		{"unknown kind", "", []string{"3: adapters[0].kind: unknown kind \"hl7v2-pass\"", `"hl7v2-pas"`}},
		{"no settings", "", nil}, // filled below
		{"unknown setting", listen + "\nlisen: 127.0.0.1:1", []string{"11: adapters[0].settings.lisen: unknown field; the fields here are listen, allow, send"}},
		{"listen without allow", strings.Replace(listen, "allow: [127.0.0.1]", "", 1), []string{"adapters[0].settings.allow: is required with Listen"}},
		{"bad listen address", strings.Replace(listen, "127.0.0.1:2575", "localhost", 1), []string{"6: adapters[0].settings.listen: must be host:port", `(it is "localhost")`}},
		{"bad peer", strings.Replace(listen, "[127.0.0.1]", "[10.1.2.300]", 1), []string{"adapters[0]: settings.allow:", `"10.1.2.300" is not an IP address`}},
		{"bad mode", strings.Replace(listen, "signpost-confirmed", "pas-first", 1),
			[]string{"10: adapters[0].settings.mode: must be one of [\"signpost-confirmed\" \"pas-confirmed\"]", `(it is "pas-first")`}},
		{"pas-confirmed without send", strings.Replace(listen, "signpost-confirmed", "pas-confirmed", 1),
			[]string{"adapters[0]: settings.send: a pas-confirmed instance must be able to ask the PAS"}},
		{"neither listen nor send", "services: [hs-1]\npas_number_system: https://harbour.example/Id/pas-number\nmode: signpost-confirmed",
			[]string{"neither listen nor send is set"}},
		{"no services", strings.Replace(listen, "services: [hs-1]", "services: []", 1), []string{"adapters[0].settings.services: must have at least 1"}},
		{"bad PAS number system", strings.Replace(listen, "https://harbour.example/Id/pas-number", "pas-number", 1), []string{"adapters[0].settings.pas_number_system: must be an absolute URL"}},
		{"bad duration", listen + "\nack_timeout: soon", []string{"11: adapters[0].settings.ack_timeout: \"soon\" is not a duration such as \"720h\""}},
		{"negative retry limit", listen + "\nmax_attempts: -1", []string{"adapters[0].settings.max_attempts: must be at least 0"}},
		{"retry limit not a number", listen + "\nmax_attempts: many", []string{"11: adapters[0].settings.max_attempts: a whole number is expected here, not \"many\""}},
		{"bad version", listen + "\nversion: 2.6", []string{"adapters[0].settings.version: must be one of"}},
		{"TLS key without certificate", listen + "\ntls: {key: " + missing + "}", []string{"adapters[0].settings.tls.cert: is required with Key"}},
		{"TLS files missing", listen + "\ntls: {cert: " + missing + ", key: " + missing + "}", []string{"adapters[0]: settings.tls: open " + missing}},
		{"TLS CA missing", listen + "\ntls: {ca: " + missing + "}", []string{"adapters[0]: settings.tls: open " + missing}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := instance(provider, tt.settings)
			switch tt.name {
			case "unknown kind":
				src = strings.Replace(instance(provider, listen), "kind: hl7v2-pas", "kind: hl7v2-pass", 1)
			case "no settings":
				src = strings.TrimSuffix(instance(provider, ""), "    settings:\n")
				tt.want = []string{"adapters[0].settings.services: is required", "adapters[0].settings.pas_number_system: is required",
					"adapters[0].settings.mode: is required"}
			}
			f, err := adapters.Parse([]byte(src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, src)
			}
			_, err = adapters.Build(f, base)
			if err == nil {
				t.Fatalf("Build succeeded on\n%s", src)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q; the file:\n%s", err, w, src)
				}
			}
		})
	}
	f, err := adapters.Parse([]byte(rh8))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adapters.Build(f, base); err != nil {
		t.Errorf("Build of the documented example: %v", err)
	}
}

// TestServeFailsFast: serve --adapters with a file the kind refuses stops
// app.New (the server does not start) with the file, line and path.
func TestServeFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapters.yaml")
	bad := instance(provider, strings.Replace(listen, "signpost-confirmed", "pas-confirmed", 1)+"\nack_timeout: soon")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := adapters.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	a, err := app.New(app.Config{Data: t.TempDir(), Open: true, Adapters: f})
	if err == nil {
		a.Close()
		t.Fatal("app.New succeeded")
	}
	if !strings.Contains(err.Error(), path+":11: adapters[0].settings.ack_timeout: \"soon\" is not a duration") {
		t.Errorf("app.New = %v", err)
	}
}
