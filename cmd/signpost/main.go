// Command signpost runs the Signpost FHIR R4 server and its tools.
//
//	signpost serve      run the server
//	signpost token      print an access token from the development authorisation server
//	signpost check      check that slots and appointments agree
//	signpost generate   write a synthetic region as NDJSON
//	signpost import     bulk-load NDJSON files into the store
//	signpost reindex    rebuild the search index with this release's search parameters
//	signpost adapters   the operator view of a running server's adapters: status, dead letters, replay, discard
//	signpost pas-feed   upload a PAS slot feed (CSV or NDJSON) to a running server
//	signpost backup     an online backup of a data directory and its store, as one file
//	signpost restore    restore a backup into a new data directory
//	signpost bench      the mixed-workload benchmark against a FHIR server
//	signpost audit      archive old audit records to a file and remove them (audit archive)
//
// Every flag can also be set by an environment variable: --base-url is
// SIGNPOST_BASE_URL, and so on.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
)

var commands = map[string]func(args []string) error{
	"serve":    serve,
	"generate": generate,
	"import":   importCmd,
	"reindex":  reindexCmd,
	"check":    check,
	"token":    token,
	"adapters": adaptersCmd,
	"pas-feed": pasFeed,
	"backup":   backupCmd,
	"restore":  restoreCmd,
	"bench":    benchCmd,
	"audit":    auditCmd,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: signpost <command> [flags]\n\ncommands:")
		fmt.Fprintln(os.Stderr, "  serve    run the FHIR server")
		fmt.Fprintln(os.Stderr, "  generate write a synthetic region (organisations … slots, patients) as NDJSON")
		fmt.Fprintln(os.Stderr, "  import   bulk-load NDJSON files into the store in --data")
		fmt.Fprintln(os.Stderr, "  reindex  rebuild the search index of the store in --data with this release's search parameters")
		fmt.Fprintln(os.Stderr, "  check    check that slots and appointments agree (exit 1 on findings)")
		fmt.Fprintln(os.Stderr, "  token    print an access token from the development authorisation server in --data")
		fmt.Fprintln(os.Stderr, "  adapters status|dead-letters|replay ID|discard ID: a running server's adapters, with an operator's token")
		fmt.Fprintln(os.Stderr, "  pas-feed upload a PAS slot feed (CSV or NDJSON) to a running server's hl7v2-pas adapter")
		fmt.Fprintln(os.Stderr, "  backup   write an online backup of --data and its store to --out (while serve runs)")
		fmt.Fprintln(os.Stderr, "  restore  restore a backup (--in) into a new, empty data directory (--data)")
		fmt.Fprintln(os.Stderr, "  bench    the mixed-workload benchmark: seed a region on a FHIR server, load it, report, verify")
		fmt.Fprintln(os.Stderr, "  audit    archive: write the AuditEvents recorded before --before to --out (NDJSON), then remove them (while serve runs)")
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "signpost:", err)
		os.Exit(1)
	}
}

// newFlags returns a flag set whose defaults come from SIGNPOST_* variables
// once parse is called.
func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet(name, flag.ExitOnError)
}

// parse applies SIGNPOST_<FLAG> environment variables for flags not given
// on the command line, then parses args.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "SIGNPOST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !given[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// startCPUProfile writes a CPU profile to path (none when path is empty)
// until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
