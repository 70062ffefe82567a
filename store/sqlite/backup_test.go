package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// TestBackupWhileWriting backs up a store while goroutines write to it and
// opens the copy: every write acknowledged before Backup began is there,
// and the copy is a store that opens and reads.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	put := func(id string) error {
		return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			r := &fhir.Resource{Type: "Basic", ID: id, Version: 1, LastUpdated: time.Now().UTC(),
				JSON: []byte(`{"resourceType":"Basic","id":"` + id + `","code":{"text":"x"}}`)}
			return tx.Put(ctx, &store.Write{Resource: r})
		})
	}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("g%d-%d", g, i)
				if err := put(id); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	// Let the writers get going: wait for some acknowledged writes.
	for j := 0; ; j++ {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		if err := put(fmt.Sprintf("main-%d", j)); err != nil { // also paces the loop
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
	}
	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()
	dir := t.TempDir()
	files, err := s.Backup(ctx, dir)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != FileName {
		t.Fatalf("files = %v, want [%s]", files, FileName)
	}
	if _, err := s.Backup(ctx, dir); err == nil {
		t.Error("a second backup into the same directory overwrote the first")
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range before {
		if _, err := c.Read(ctx, "Basic", id); err != nil {
			t.Fatalf("write %s acknowledged before the backup: %v", id, err)
		}
	}
	t.Logf("%d writes acknowledged before the backup, all in it", len(before))
}

// TestSnapshotFileMissing: a file that is not there is an error, and
// leaves no copy behind.
func TestSnapshotFileMissing(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "copy.db")
	if err := SnapshotFile(context.Background(), filepath.Join(dir, "none.db"), dst); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a copy was left behind")
	}
}
