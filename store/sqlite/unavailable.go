package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	sqlite3 "modernc.org/sqlite"

	"github.com/signpost-fhir/signpost/fhir"
)

// Failures of the data directory rather than of the request: the disk is
// full (or a file-size limit reached), the directory or its files are
// read-only, or the operating system failed an input or output. A write
// that meets one is answered 503 with Retry-After (fhir.Unavailable),
// never 500: SQLite rolls the transaction back, so nothing of it is
// stored, reads keep working, and the same write succeeds once the
// operator has made room or made the directory writable again.

// Primary result codes of SQLite (the low byte of an extended code).
const (
	codeReadOnly = 8  // SQLITE_READONLY: the database file, its WAL or directory cannot be written
	codeIOErr    = 10 // SQLITE_IOERR: a read, write, fsync or truncate failed (EFBIG past RLIMIT_FSIZE ends here)
	codeFull     = 13 // SQLITE_FULL: a write found no space (ENOSPC)
	codeCantOpen = 14 // SQLITE_CANTOPEN: a file (the WAL, a journal) cannot be opened or created
)

// unavailableErrnos are the operating system's errors of a data directory
// that cannot take a write now.
var unavailableErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EIO}

// classify returns err as fhir.Unavailable when the data directory caused
// it, else as it is. The store's own and the domain's answers (a
// fhir.Error of another kind than Other) keep theirs.
func classify(err error) error {
	if err == nil || !storageFailed(err) {
		return err
	}
	e := fhir.Errorf(fhir.Unavailable, "transient", "",
		"the server cannot store anything now (its data directory is full or not writable); nothing of this request was stored: try again later")
	e.Err = err
	return e
}

// storageFailed reports whether err is a failure of the data directory.
func storageFailed(err error) bool {
	var fe *fhir.Error
	if errors.As(err, &fe) && fe.Kind != fhir.Other {
		return false
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case codeReadOnly, codeIOErr, codeFull, codeCantOpen:
			return true
		}
		return false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		for _, e := range unavailableErrnos {
			if errno == e {
				return true
			}
		}
	}
	return false
}

// probeWritable fails, saying so, when dir cannot be written: SQLite
// creates its write-ahead log and shared-memory index beside the database
// and writes them even to read, so a store on a read-only directory
// cannot serve at all; without the probe, it fails with "unable to open
// database file".
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("sqlite: the data directory %s cannot be written (%w): the store writes its database and write-ahead log there, even to serve reads", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// tracerName is the instrumentation scope of the store's spans.
const tracerName = "github.com/signpost-fhir/signpost/store/sqlite"

// traceUpdate starts the span of one Update, a child of the request's (or
// background task's) span: only a traced caller's Updates are traced, so
// that the store adds nothing to untraced work. It carries the database
// system, never a query's values.
func traceUpdate(ctx context.Context) (context.Context, func(error)) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "sqlite.update", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("db.system.name", "sqlite"), attribute.String("db.operation.name", "transaction")))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, fhir.KindOf(err).String())
		}
		span.End()
	}
}
