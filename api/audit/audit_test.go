package audit_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// fullStore is a real store whose writes fail as on a full disk
// (fhir.Unavailable, as store/sqlite answers one) while full is set.
type fullStore struct {
	store.Store
	full atomic.Bool
}

func (s *fullStore) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	if s.full.Load() {
		return fhir.Errorf(fhir.Unavailable, "transient", "", "the disk is full")
	}
	return s.Store.Update(ctx, fn)
}

type noIndex struct{}

func (noIndex) Extract(string, []byte) ([]search.Entry, error) { return nil, nil }

// openSQLite opens a SQLite store in a directory of its own, closed when
// the test ends (after its deferred calls, such as a trail's Close).
func openSQLite(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestTrailKeepsRecordsItCannotStore: while the store cannot take the
// audit records of reads, the trail keeps them (reads answered), up to
// Retain; beyond, audited requests are refused with 503 through Fail, so
// that nothing is served unaudited. When the store takes writes again,
// every kept record is stored, in one trail with those after, and
// requests are served again. The same whether the records are stored
// through the write path or in an audit database of their own.
func TestTrailKeepsRecordsItCannotStore(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run(map[bool]string{false: "main store", true: "audit database"}[own], func(t *testing.T) { testTrailKeeps(t, own) })
	}
}

func testTrailKeeps(t *testing.T, own bool) {
	sq := openSQLite(t)
	st := &fullStore{Store: sq}
	cfg := audit.Config{Writes: write.New(st, noIndex{})}
	if own {
		other := openSQLite(t)
		cfg = audit.Config{Writes: write.New(other, noIndex{}), Store: st, Mover: audit.NewMover(other, st, noIndex{})}
	}
	trail := audit.New(audit.Config{BaseURL: "http://x/fhir", Writes: cfg.Writes, Store: cfg.Store, Mover: cfg.Mover, Search: noIndex{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Flush: 10 * time.Millisecond, Retain: 3,
		Fail: func(c *gin.Context, err error) {
			if fhir.KindOf(err) != fhir.Unavailable {
				t.Errorf("refused with %v, want unavailable", err)
			}
			c.String(http.StatusServiceUnavailable, "unavailable")
		}})
	defer trail.Close()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(trail.Middleware)
	r.GET("/fhir/Patient/:id", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	get := func() int {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/fhir/Patient/p1", nil))
		return w.Code
	}
	count := func() int {
		page, err := sq.History(context.Background(), store.HistoryQuery{Type: audit.Type, Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Versions)
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	st.full.Store(true)
	served := 0
	poll("a read refused once Retain records wait", func() bool {
		switch code := get(); code {
		case 200:
			served++
			return false
		case 503:
			return true
		default:
			t.Fatalf("a read with the store full: %d", code)
			return true
		}
	})
	if served < 3 {
		t.Errorf("only %d reads served before refusing, want at least Retain (3)", served)
	}
	if n := trail.Pending(); n != served {
		t.Errorf("%d records kept, %d reads served (a refused read is not served, so not recorded)", n, served)
	}
	st.full.Store(false)
	poll("the kept records stored", func() bool { return trail.Pending() == 0 && count() >= served })
	if code := get(); code != 200 {
		t.Fatalf("a read once the store takes writes: %d", code)
	}
	trail.Flush()
	if n := count(); n != served+1 {
		t.Errorf("%d AuditEvents stored, want %d (those kept while full, one after)", n, served+1)
	}
}

// gatedStore is a real store whose writes wait at a gate while it is
// shut: a store slower than requests arrive.
type gatedStore struct {
	store.Store
	gate chan struct{}
}

func (s *gatedStore) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Update(ctx, fn)
}

// TestTrailBacklog: while the store takes records more slowly than
// requests arrive, at most Backlog records wait. A request that finds
// them waiting waits for the trail to catch up and is then served and
// recorded; one that waits longer than BacklogWait is refused with 503
// through Fail. Without the bound the reads would all be served at once
// and the buffer would grow without limit.
func TestTrailBacklog(t *testing.T) {
	for _, tt := range []struct {
		name string
		wait time.Duration
		want int // the last read's status
	}{
		{"waits for the trail to catch up", time.Minute, http.StatusOK},
		{"refused after BacklogWait", 50 * time.Millisecond, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sq := openSQLite(t)
			st := &gatedStore{Store: sq, gate: make(chan struct{})}
			trail := audit.New(audit.Config{BaseURL: "http://x/fhir", Writes: write.New(st, noIndex{}), Search: noIndex{},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Flush: 10 * time.Millisecond, Backlog: 3, BacklogWait: tt.wait,
				Fail: func(c *gin.Context, err error) {
					if fhir.KindOf(err) != fhir.Unavailable {
						t.Errorf("refused with %v, want unavailable", err)
					}
					c.String(http.StatusServiceUnavailable, "unavailable")
				}})
			defer trail.Close()
			gin.SetMode(gin.ReleaseMode)
			r := gin.New()
			r.Use(trail.Middleware)
			r.GET("/fhir/Patient/:id", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
			get := func() int {
				w := httptest.NewRecorder()
				r.ServeHTTP(w, httptest.NewRequest("GET", "/fhir/Patient/p1", nil))
				return w.Code
			}
			for i := range 3 {
				if code := get(); code != http.StatusOK {
					t.Fatalf("read %d below the backlog: %d", i+1, code)
				}
			}
			last := make(chan int, 1)
			go func() { last <- get() }()
			if tt.want == http.StatusOK {
				select {
				case code := <-last:
					t.Fatalf("the fourth read was answered (%d) with Backlog records waiting", code)
				case <-time.After(200 * time.Millisecond):
				}
				if n := trail.Pending(); n != 3 {
					t.Errorf("%d records waiting, want the Backlog of 3", n)
				}
			}
			if tt.want != http.StatusOK {
				if code := <-last; code != tt.want {
					t.Fatalf("the fourth read with the store stuck: %d, want %d", code, tt.want)
				}
			}
			close(st.gate) // the store catches up
			if tt.want == http.StatusOK {
				if code := <-last; code != tt.want {
					t.Fatalf("the fourth read once the store caught up: %d, want %d", code, tt.want)
				}
			}
			trail.Flush()
			page, err := sq.History(context.Background(), store.HistoryQuery{Type: audit.Type, Count: 100})
			if err != nil {
				t.Fatal(err)
			}
			want := 3
			if tt.want == http.StatusOK {
				want = 4
			}
			if len(page.Versions) != want {
				t.Errorf("%d AuditEvents stored, want %d", len(page.Versions), want)
			}
		})
	}
}
