package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// SystemScopes is every interaction on every type, as a backend service
// asks for them: with it, a client's role and organisation decide.
const SystemScopes = "system/*.cruds"

// Client makes requests to a server New started, as its clients do:
// through the real HTTP stack, with tokens of the development
// authorisation server. A test's fixture embeds it.
type Client struct {
	T   testing.TB
	App *app.App
	URL string // the FHIR base; every path below is from it
}

// NewClient is a Client of the server a and ts (New's results).
func NewClient(t testing.TB, a *app.App, ts *httptest.Server) Client {
	return Client{T: t, App: a, URL: ts.URL + "/fhir"}
}

// Token mints a development-server token for client (devserver.Client…)
// with scope ("" for the client's own).
func (c Client) Token(client, scope string) string {
	c.T.Helper()
	return c.Mint(devserver.TokenOptions{Client: client, Scope: scope})
}

// Mint mints a development-server token with opts.
func (c Client) Mint(opts devserver.TokenOptions) string {
	c.T.Helper()
	tok, err := devserver.MintToken(c.App.Config.Data, opts)
	if err != nil {
		c.T.Fatal(err)
	}
	return tok
}

// Send makes a request with token (none when ""), body (a []byte as it
// is, anything else as JSON; nil for none) and header (name, value
// pairs; the Content-Type is application/fhir+json unless they set it),
// and returns the response, its body read, and the body.
func (c Client) Send(token, method, path string, body any, header ...string) (*http.Response, []byte) {
	c.T.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				c.T.Fatal(err)
			}
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, r)
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.T.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp, b
}

// Request makes a request as Send does and returns the status and the
// answer as it came.
func (c Client) Request(token, method, path string, body any) (int, []byte) {
	c.T.Helper()
	resp, b := c.Send(token, method, path, body)
	return resp.StatusCode, b
}

// Do makes a request as Send does and returns the status and the JSON
// answer (nil when the answer is not a JSON object).
func (c Client) Do(token, method, path string, body any) (int, map[string]any) {
	c.T.Helper()
	status, b := c.Request(token, method, path, body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return status, out
}

// GetPage gets a page outside the FHIR API, without a token (path from
// the server's root: /readyz, /metrics), and returns the status and the
// page.
func (c Client) GetPage(path string) (int, []byte) {
	c.T.Helper()
	resp, err := http.Get(strings.TrimSuffix(c.URL, "/fhir") + path)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.T.Fatalf("GET %s: reading the answer: %v", path, err)
	}
	return resp.StatusCode, b
}

// Read returns the current JSON of typ/id, straight from the store.
func (c Client) Read(typ, id string) map[string]any {
	c.T.Helper()
	res, err := c.App.Store.Read(context.Background(), typ, id)
	if err != nil {
		c.T.Fatalf("read %s/%s: %v", typ, id, err)
	}
	var out map[string]any
	if err := json.Unmarshal(res.JSON, &out); err != nil {
		c.T.Fatal(err)
	}
	return out
}

// DetailsCode returns the Signpost error code of an OperationOutcome:
// the first code of its issues' details ("" when none has one).
func DetailsCode(oo map[string]any) string {
	issues, _ := oo["issue"].([]any)
	for _, is := range issues {
		d, _ := is.(map[string]any)["details"].(map[string]any)
		codings, _ := d["coding"].([]any)
		for _, c := range codings {
			if code, _ := c.(map[string]any)["code"].(string); code != "" {
				return code
			}
		}
	}
	return ""
}
