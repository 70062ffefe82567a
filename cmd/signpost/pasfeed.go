package main

import (
	"context"
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
	c := &opsClient{base: strings.TrimSuffix(*base, "/"), token: *tok, cmd: "pas-feed", timeout: 10 * time.Minute}
	ps, err := c.send(context.Background(), http.MethodPost, pas.FeedOperation, q, body, ctype)
	var refused *opError
	if errors.As(err, &refused) {
		for _, is := range refused.Issues {
			fmt.Fprintf(out, "%s: %s\n", is.Severity, is.Diagnostics)
		}
		return fmt.Errorf("pas-feed: the feed was refused (%s); nothing was changed", refused.Status)
	}
	if err != nil {
		return err
	}
	var counts []string
	for _, p := range ps {
		if p.ValueInteger != nil && p.Name != "rows" {
			counts = append(counts, fmt.Sprintf("%d %s", *p.ValueInteger, p.Name))
		} else if p.ValueInteger != nil {
			fmt.Fprintf(out, "%s: %d rows: ", *adapter, *p.ValueInteger)
		}
	}
	fmt.Fprintln(out, strings.Join(counts, ", "))
	for _, p := range ps {
		if p.Name != "issue" {
			continue
		}
		parts := opParams(p.Part)
		line := ""
		if l := parts.get("line"); l != "" {
			line = "line " + l + ": "
		}
		fmt.Fprintf(out, "  %s%s %s: %s\n", line, parts.get("outcome"), parts.get("pas_slot_id"), parts.get("reason"))
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
