// Command gen writes the portal's vendored files (package vendored) from
// a node_modules directory into the portal's assets directory:
//
//	go run ./internal/vendored/gen NODE_MODULES ASSETS
//
// "go generate ./portal" runs it after "npm ci --prefix test/portal".
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/signpost-fhir/signpost/portal/internal/vendored"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gen NODE_MODULES ASSETS")
		os.Exit(2)
	}
	files, err := vendored.Files(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err, "(run npm ci --prefix test/portal first)")
		os.Exit(1)
	}
	for name, b := range files {
		p := filepath.Join(os.Args[2], filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
