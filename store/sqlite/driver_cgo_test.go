//go:build sqlitecgo

package sqlite

// Built with -tags sqlitecgo (and cgo), the store benchmarks also run on
// github.com/mattn/go-sqlite3, the cgo driver around the C SQLite, for the
// comparison in docs/PERFORMANCE.md:
//
//	CGO_ENABLED=1 go test -tags sqlitecgo -run '^$' -bench Store ./store/sqlite/

import (
	"database/sql"
	"net/url"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

func init() {
	// mattn takes most pragmas as _name=value parameters, but not
	// temp_store: a connect hook sets it on every connection.
	sql.Register("sqlite3_signpost", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
		return err
	}})
	benchDrivers = append(benchDrivers, benchDriver{"mattn", "sqlite3_signpost", mattnDSN})
}

// mattnDSN turns the store's "name(value)" pragmas into mattn's
// _name=value parameters (temp_store is set by the connect hook).
func mattnDSN(path string, pragmas []string) string {
	q := url.Values{}
	for _, p := range pragmas {
		name, value, _ := strings.Cut(strings.TrimSuffix(p, ")"), "(")
		if name != "temp_store" {
			q.Set("_"+name, value)
		}
	}
	return "file:" + path + "?" + q.Encode()
}
