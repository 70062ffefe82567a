package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// opsClient calls a running server's operations ($adapters,
// $adapter-replay, $pas-slot-feed…) with a bearer token, and reads their
// answers: a Parameters resource, or an OperationOutcome returned as an
// *opError.
type opsClient struct {
	// base is the server's FHIR base, without a trailing slash.
	base string
	// token is the access token; "" sends none.
	token string
	// cmd names the command in error messages ("adapters", "pas-feed").
	cmd string
	// timeout bounds one call; 0 means 30 seconds.
	timeout time.Duration
}

// opParam is a Parameters parameter as the commands read and write it: a
// primitive value, or parts.
type opParam struct {
	Name          string                   `json:"name"`
	ValueString   string                   `json:"valueString,omitempty"`
	ValueID       string                   `json:"valueId,omitempty"`
	ValueCode     string                   `json:"valueCode,omitempty"`
	ValueInstant  string                   `json:"valueInstant,omitempty"`
	ValueInteger  *int                     `json:"valueInteger,omitempty"`
	ValueQuantity *struct{ Value float64 } `json:"valueQuantity,omitempty"`
	Part          []opParam                `json:"part,omitempty"`
}

// text is the parameter's value as text.
func (p opParam) text() string {
	switch {
	case p.ValueInteger != nil:
		return strconv.Itoa(*p.ValueInteger)
	case p.ValueQuantity != nil:
		return (time.Duration(p.ValueQuantity.Value) * time.Second).String()
	}
	return p.ValueString + p.ValueID + p.ValueCode + p.ValueInstant
}

// opParams is a Parameters resource's parameter list.
type opParams []opParam

// get is the text of the first parameter named name, "" if none.
func (ps opParams) get(name string) string {
	for _, p := range ps {
		if p.Name == name {
			return p.text()
		}
	}
	return ""
}

// opIssue is an OperationOutcome issue.
type opIssue struct {
	Severity    string `json:"severity"`
	Diagnostics string `json:"diagnostics"`
}

// opError is an operation's refusal: the HTTP status and the
// OperationOutcome's issues.
type opError struct {
	cmd, op string
	Status  string
	Issues  []opIssue
}

// Error is "cmd: $op: status: diagnostics; diagnostics".
func (e *opError) Error() string {
	msgs := make([]string, 0, len(e.Issues))
	for _, is := range e.Issues {
		msgs = append(msgs, is.Diagnostics)
	}
	return fmt.Sprintf("%s: $%s: %s: %s", e.cmd, e.op, e.Status, strings.Join(msgs, "; "))
}

// call invokes $op with in as a Parameters body (POST) or none (in nil,
// GET), and query as its query string (nil for none).
func (c *opsClient) call(ctx context.Context, method, op string, query url.Values, in []opParam) (opParams, error) {
	var body []byte
	ctype := ""
	if in != nil {
		body, _ = json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": in})
		ctype = "application/fhir+json"
	}
	return c.send(ctx, method, op, query, body, ctype)
}

// send invokes $op with the raw body of media type ctype (none when body
// is nil) and query as its query string, and returns the Parameters
// answered; an OperationOutcome, or any status but 2xx, is an *opError.
func (c *opsClient) send(ctx context.Context, method, op string, query url.Values, body []byte, ctype string) (opParams, error) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := c.base + "/$" + op
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return nil, fmt.Errorf("%s: --url %q: %w", c.cmd, c.base, err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.cmd, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", c.cmd, err)
	}
	var res struct {
		ResourceType string    `json:"resourceType"`
		Parameter    opParams  `json:"parameter"`
		Issue        []opIssue `json:"issue"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("%s: $%s answered %s, not FHIR JSON: %.200s", c.cmd, op, resp.Status, raw)
	}
	if resp.StatusCode >= 300 || res.ResourceType != "Parameters" {
		return nil, &opError{cmd: c.cmd, op: op, Status: resp.Status, Issues: res.Issue}
	}
	return res.Parameter, nil
}
