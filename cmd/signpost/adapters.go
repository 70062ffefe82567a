package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/signpost-fhir/signpost/adapters"
)

// adaptersUsage is the adapters command's help.
const adaptersUsage = `usage: signpost adapters <status|dead-letters|replay ID|discard ID> [flags]

  status                      every adapter instance: state, backlog, last error ($adapters)
  dead-letters [--adapter A]  the dead letters, oldest first ($adapter-dead-letters)
               [--limit N]
  replay ID                   send dead letter ID again ($adapter-replay)
  discard ID [--reason R]     give dead letter ID up; its appointment's later messages flow ($adapter-discard)

flags (also SIGNPOST_URL, SIGNPOST_TOKEN):
  --url    the server's FHIR base (default http://127.0.0.1:8080/fhir)
  --token  an access token of the operator role (signpost token --client operator)`

// adaptersCmd is signpost adapters: the operator view of a running
// server's adapter instances, through its operations, with a token.
func adaptersCmd(args []string) error {
	return runAdapters(context.Background(), os.Stdout, args)
}

// runAdapters runs signpost adapters args, writing to out.
func runAdapters(ctx context.Context, out io.Writer, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New(adaptersUsage)
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("adapters " + sub)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), adaptersUsage) }
	base := fs.String("url", "http://127.0.0.1:8080/fhir", "the server's FHIR base")
	token := fs.String("token", "", "an access token of the operator role")
	adapter := fs.String("adapter", "", "dead-letters: only this instance's")
	limit := fs.Int("limit", adapters.DefaultDeadLetters, "dead-letters: at most this many")
	reason := fs.String("reason", "", "discard: why it is given up")
	var id string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	c := &opsClient{base: strings.TrimSuffix(*base, "/"), token: *token, cmd: "adapters"}
	if c.token == "" {
		return errors.New("adapters: no token: give --token or SIGNPOST_TOKEN (signpost token --client operator mints one on a development server)")
	}
	switch sub {
	case "status":
		p, err := c.call(ctx, http.MethodGet, adapters.OpStatus, nil, nil)
		if err != nil {
			return err
		}
		return printStatus(out, p)
	case "dead-letters":
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *adapter != "" {
			q.Set("adapter", *adapter)
		}
		p, err := c.call(ctx, http.MethodGet, adapters.OpDeadLetters, q, nil)
		if err != nil {
			return err
		}
		return printDeadLetters(out, p)
	case "replay", "discard":
		if id == "" {
			return fmt.Errorf("adapters %s: which dead letter? give its ID (signpost adapters dead-letters lists them)", sub)
		}
		in := []opParam{{Name: "id", ValueID: id}}
		op := adapters.OpReplay
		if sub == "discard" {
			op = adapters.OpDiscard
			if *reason != "" {
				in = append(in, opParam{Name: "reason", ValueString: *reason})
			}
		}
		p, err := c.call(ctx, http.MethodPost, op, nil, in)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "dead letter %s: %s\n", p.get("id"), p.get("state"))
		return err
	}
	return fmt.Errorf("adapters: unknown command %q\n%s", sub, adaptersUsage)
}

// printStatus writes $adapters's answer as a table, then each instance's
// detail and last error.
func printStatus(out io.Writer, ps opParams) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADAPTER\tKIND\tSTATE\tPENDING\tIN FLIGHT\tDEAD\tOLDEST WAITING")
	var notes []string
	n := 0
	for _, a := range ps {
		if a.Name != "adapter" {
			continue
		}
		n++
		parts := opParams(a.Part)
		var backlog opParams
		for _, p := range parts {
			if p.Name == "backlog" {
				backlog = p.Part
			}
		}
		oldest := backlog.get("oldestPendingAge")
		if oldest == "" {
			oldest = "-"
		}
		kind := parts.get("kind")
		if kind == "" {
			kind = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", parts.get("name"), kind, parts.get("state"),
			backlog.get("pending"), backlog.get("inFlight"), backlog.get("dead"), oldest)
		if d := parts.get("detail"); d != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", parts.get("name"), d))
		}
		if e := parts.get("lastError"); e != "" {
			notes = append(notes, fmt.Sprintf("%s: last error at %s: %s", parts.get("name"), parts.get("lastErrorAt"), e))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(out, "no adapter instances (serve --adapters FILE enables them)")
	}
	for _, note := range notes {
		fmt.Fprintln(out, note)
	}
	if r := ps.get("retention"); r != "" {
		fmt.Fprintf(out, "delivered messages and inbound records are kept %s\n", r)
	}
	return nil
}

// printDeadLetters writes $adapter-dead-letters's answer as a table.
func printDeadLetters(out io.Writer, ps opParams) error {
	if !slicesContainsName(ps, "deadLetter") {
		_, err := fmt.Fprintln(out, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADAPTER\tKEY\tCONTROL ID\tATTEMPTS\tDEAD SINCE\tREASON")
	for _, d := range ps {
		if d.Name != "deadLetter" {
			continue
		}
		p := opParams(d.Part)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.get("id"), p.get("adapter"), p.get("key"), p.get("controlId"),
			p.get("attempts"), p.get("deadSince"), strings.ReplaceAll(p.get("reason"), "\n", " "))
	}
	return tw.Flush()
}

// slicesContainsName reports whether ps has a parameter called name.
func slicesContainsName(ps opParams, name string) bool {
	return slices.ContainsFunc(ps, func(p opParam) bool { return p.Name == name })
}
