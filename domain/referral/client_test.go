package referral_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// client talks to a real test server.
type client struct {
	t     *testing.T
	base  string
	a     *app.App
	token string // bearer token sent with every request, when not empty
}

func newClient(t *testing.T) *client {
	t.Helper()
	return newClientWith(t, app.Config{})
}

// newClientWith starts the real server with cfg.
func newClientWith(t *testing.T, cfg app.Config) *client {
	t.Helper()
	a, ts := apptest.New(t, cfg)
	return &client{t: t, base: ts.URL + "/fhir", a: a}
}

// as returns a copy of c that sends token.
func (c *client) as(token string) *client {
	d := *c
	d.token = token
	return &d
}

// do sends a request and returns the status and decoded JSON body.
func (c *client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	status, raw := c.raw(method, path, body)
	var out map[string]any
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return status, out
}

func (c *client) raw(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// must sends a request that must answer want, returning the body.
func (c *client) must(want int, method, path string, body any) map[string]any {
	c.t.Helper()
	status, out := c.do(method, path, body)
	if status != want {
		b, _ := json.Marshal(out)
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	return out
}

// create POSTs a resource and returns its "Type/id".
func (c *client) create(res map[string]any) string {
	c.t.Helper()
	out := c.must(201, "POST", "/"+res["resourceType"].(string), res)
	return out["resourceType"].(string) + "/" + out["id"].(string)
}

// search returns the resources of a searchset.
func (c *client) search(path string) []map[string]any {
	c.t.Helper()
	b := c.must(200, "GET", path, nil)
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

// params builds a Parameters resource from name/value pairs: a string value
// becomes valueString, a map a valueReference.
func params(kv ...any) map[string]any {
	var ps []map[string]any
	for i := 0; i+1 < len(kv); i += 2 {
		p := map[string]any{"name": kv[i]}
		switch v := kv[i+1].(type) {
		case string:
			p["valueString"] = v
		case bool:
			p["valueBoolean"] = v
		case int:
			p["valueInteger"] = v
		case map[string]any:
			p["valueReference"] = v
		}
		ps = append(ps, p)
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

func ref(r string) map[string]any { return map[string]any{"reference": r} }

// get walks a decoded JSON value by member names and array indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// errorCode returns the first Signpost error code of an OperationOutcome.
func errorCode(oo map[string]any) string {
	s, _ := get(oo, "issue", 0, "details", "coding", 0, "code").(string)
	return s
}
