package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/adapters/pas"
)

// pasFeed uploads a PAS slot feed file to a running server's
// $pas-slot-feed operation and prints what it changed:
//
//	SIGNPOST_TOKEN=$(signpost token --client provider --scope 'system/*.cruds') \
//	  signpost pas-feed --adapter pas-rh8 slots.csv
func pasFeed(args []string) error { return runPASFeed(args, os.Stdout) }

// clinicFlags collects repeated --clinic flags.
type clinicFlags []string

func (c *clinicFlags) String() string     { return strings.Join(*c, ",") }
func (c *clinicFlags) Set(v string) error { *c = append(*c, v); return nil }

func runPASFeed(args []string, out io.Writer) error {
	fs := newFlags("pas-feed")
	base := fs.String("url", "http://127.0.0.1:8080/fhir", "the server's FHIR base URL")
	adapter := fs.String("adapter", "", "the hl7v2-pas adapter instance the feed is for (required)")
	tok := fs.String("token", "", "access token (a provider of the instance's trust, or an operator); better given as SIGNPOST_TOKEN, since a command line shows in ps")
	mode := fs.String("mode", pas.FeedIncremental, "incremental, or full: slots of the feed's clinics absent from it are withdrawn")
	format := fs.String("format", "", "csv or ndjson (default from the file's extension: .csv, .ndjson or .jsonl)")
	var clinics clinicFlags
	fs.Var(&clinics, "clinic", "with --mode full: a clinic treated as fully given even when no row names it (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *adapter == "" || fs.NArg() != 1 {
		return errors.New("pas-feed: usage: signpost pas-feed --adapter NAME [--mode full] FILE (token in SIGNPOST_TOKEN)")
	}
	file := fs.Arg(0)
	ctype, err := feedType(*format, file)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	q := url.Values{"adapter": {*adapter}}
	if *mode != pas.FeedIncremental {
		q.Set("mode", *mode)
	}
	for _, c := range clinics {
		q.Add("clinic", c)
	}
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(*base, "/")+"/$"+pas.FeedOperation+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/fhir+json")
	if *tok != "" {
		req.Header.Set("Authorization", "Bearer "+*tok)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name         string `json:"name"`
			ValueInteger *int   `json:"valueInteger"`
			Part         []struct {
				Name           string          `json:"name"`
				ValueInteger   *int            `json:"valueInteger"`
				ValueString    string          `json:"valueString"`
				ValueCode      string          `json:"valueCode"`
				ValueReference json.RawMessage `json:"valueReference"`
			} `json:"part"`
		} `json:"parameter"`
		Issue []struct {
			Severity    string `json:"severity"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return fmt.Errorf("pas-feed: %s answered %s: %s", req.URL.Host, resp.Status, raw)
	}
	if resp.StatusCode != http.StatusOK || answer.ResourceType != "Parameters" {
		for _, is := range answer.Issue {
			fmt.Fprintf(out, "%s: %s\n", is.Severity, is.Diagnostics)
		}
		return fmt.Errorf("pas-feed: the feed was refused (%s); nothing was changed", resp.Status)
	}
	var counts []string
	for _, p := range answer.Parameter {
		if p.ValueInteger != nil && p.Name != "rows" {
			counts = append(counts, fmt.Sprintf("%d %s", *p.ValueInteger, p.Name))
		} else if p.ValueInteger != nil {
			fmt.Fprintf(out, "%s: %d rows: ", *adapter, *p.ValueInteger)
		}
	}
	fmt.Fprintln(out, strings.Join(counts, ", "))
	for _, p := range answer.Parameter {
		if p.Name != "issue" {
			continue
		}
		var line, id, outcome, reason string
		for _, x := range p.Part {
			switch x.Name {
			case "line":
				line = fmt.Sprintf("line %d: ", *x.ValueInteger)
			case "pas_slot_id":
				id = x.ValueString
			case "outcome":
				outcome = x.ValueCode
			case "reason":
				reason = x.ValueString
			}
		}
		fmt.Fprintf(out, "  %s%s %s: %s\n", line, outcome, id, reason)
	}
	return nil
}

// feedType is the media type of a feed file, from --format or the file's
// extension.
func feedType(format, file string) (string, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".csv":
			format = "csv"
		case ".ndjson", ".jsonl":
			format = "ndjson"
		}
	}
	switch format {
	case "csv":
		return pas.FeedCSV, nil
	case "ndjson":
		return pas.FeedNDJSON, nil
	}
	return "", fmt.Errorf("pas-feed: say --format csv or --format ndjson (%s has neither extension)", file)
}
