package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/signpost-fhir/signpost/api/audit"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// AuditDir is the audit database's directory inside the data directory
// (docs/audit.md).
const AuditDir = "audit"

// The SQLite store has every capability the server finds on the store
// it reads and writes through, so that audit.Split passes them all on,
// and an audit queue (store.AuditQueue): a write's record is queued there,
// in its transaction, and moved into the audit database by the mover.
var (
	_ audit.Main       = (*sqlite.Store)(nil)
	_ store.AuditQueue = (*sqlite.Store)(nil)
)

// openAudits opens the audit database beside an embedded main store st:
// the same SQLite store, on its own file in <data>/audit, with its own
// writer and checkpointer. It returns it and the store the server reads
// and writes through (st with AuditEvents read from the audit database:
// audit.Split). A main store without every capability audit.Main lists
// (MongoDB, which has no single writer to relieve) keeps its AuditEvents
// itself: then audits and served are nil. So does a server open
// without authorisation or audit (tests and experiments): it records
// nothing, and AuditEvents created through its API stay in the main store.
func openAudits(cfg Config, st store.Store, reg *search.Registry) (audits store.Store, served *audit.Routed, err error) {
	main, ok := st.(audit.Main)
	if _, sqliteMain := st.(*sqlite.Store); !ok || !sqliteMain || cfg.Open {
		return nil, nil, nil
	}
	audits, err = OpenAudits(cfg, reg)
	if err != nil {
		return nil, nil, err
	}
	return audits, audit.Split(main, audits, reg), nil
}

// OpenAudits opens the audit database of cfg's data directory (for tools
// such as signpost check); reg may be nil.
func OpenAudits(cfg Config, reg *search.Registry) (store.Store, error) {
	audits, err := store.Open(context.Background(), store.Config{URI: sqlite.Scheme + ":" + filepath.Join(cfg.Data, AuditDir), Data: cfg.Data, Search: reg})
	if err != nil {
		return nil, fmt.Errorf("the audit database: %w", err)
	}
	return audits, nil
}

// catchUp moves into the audit database the records of writes it lacks:
// those queued in the main store, and the AuditEvents an older release
// kept there.
func catchUp(log *slog.Logger, m *audit.Mover) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	start := time.Now()
	n, err := m.Move(ctx)
	if err != nil {
		// The trail tries again at every flush; the records are safe in
		// the main store meanwhile.
		log.Error("copying AuditEvents into the audit database failed; they are searchable once it succeeds", "error", err)
		return nil
	}
	if n > 0 {
		log.Info("AuditEvents copied into the audit database", "records", n, "duration", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}
