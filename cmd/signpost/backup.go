package main

// signpost backup and signpost restore: an online backup of a data
// directory as one tar.gz, and its restoration into a new directory
// (docs/operations-backup.md).

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// manifestName is the archive's first entry: what the backup holds.
const manifestName = "signpost-backup.json"

// backupFormat is the version of the archive's layout.
const backupFormat = 1

// manifest describes a backup archive.
type manifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// Store is the scheme of the store backed up ("sqlite"), or "" when
	// the archive holds only the data directory's files
	// (--without-store).
	Store string       `json:"store"`
	Files []backupFile `json:"files"`
}

// backupFile is one file of the archive, relative to the data directory.
type backupFile struct {
	Path   string      `json:"path"`
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256"`
}

// sqliteHeader begins every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// backupCmd writes an online backup of --data (with its store) to --out.
func backupCmd(args []string) error {
	fs := newFlags("backup")
	var cfg app.Config
	addStoreFlags(fs, &cfg)
	out := fs.String("out", "", "the backup file to write (a tar.gz; it must not exist)")
	withoutStore := fs.Bool("without-store", false, "archive only the data directory's keys and state, not the store: for a store backed up by its own tools (MongoDB)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	m, err := backup(ctx, cfg, *out, *withoutStore)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	fmt.Fprintf(os.Stderr, "backed up %s (store %q) into %s: %d files, %d bytes before compression\n",
		cfg.Data, m.Store, *out, len(m.Files), size)
	return nil
}

// backup copies the store (through store.Backuper) and every other file of
// cfg.Data into a staging directory beside out, then writes them as a
// tar.gz to out. SQLite databases in cfg.Data other than the store's are
// copied with sqlite.SnapshotFile, so that a database being written is
// copied consistently too.
func backup(ctx context.Context, cfg app.Config, out string, withoutStore bool) (*manifest, error) {
	if fi, err := os.Stat(cfg.Data); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("--data %q is not a data directory", cfg.Data)
	}
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("%s exists", out)
	}
	staging, err := os.MkdirTemp(filepath.Dir(out), ".signpost-backup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	m := &manifest{Format: backupFormat, Created: time.Now().UTC()}

	// The store first: what it writes is the database as of now; the
	// keys do not change while a server runs (they are created at its
	// first start).
	var storeFiles []string
	if !withoutStore {
		st, err := app.OpenStore(cfg)
		if err != nil {
			return nil, err
		}
		b, ok := st.(store.Backuper)
		if !ok {
			st.Close()
			return nil, fmt.Errorf("the %s store has no online backup: back it up with its own tools and archive the data directory with --without-store (docs/operations-backup.md)",
				store.Scheme(cfg.Store))
		}
		storeFiles, err = b.Backup(ctx, staging)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		m.Store = store.Scheme(cfg.Store)
		if m.Store == "" {
			m.Store = sqlite.Scheme
		}
	}
	// The store's own files in the data directory (with the journals
	// beside them) are in the store's copy already.
	skip := map[string]bool{}
	for _, f := range storeFiles {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			skip[f+suffix] = true
		}
	}
	absOut, _ := filepath.Abs(out)
	absStaging, _ := filepath.Abs(staging)
	err = filepath.WalkDir(cfg.Data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if abs, _ := filepath.Abs(p); abs == absStaging || abs == absOut {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(cfg.Data, p)
		if err != nil || rel == "." || skip[filepath.ToSlash(rel)] {
			return err
		}
		dst := filepath.Join(staging, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o700)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: only regular files and directories can be backed up", p)
		case strings.HasSuffix(rel, "-wal") || strings.HasSuffix(rel, "-shm") || strings.HasSuffix(rel, "-journal"):
			return nil // a journal: its database is copied through SQLite
		}
		isDB, err := isSQLite(p)
		if err != nil {
			return err
		}
		if isDB {
			return sqlite.SnapshotFile(ctx, p, dst)
		}
		return copyFile(p, dst)
	})
	if err != nil {
		return nil, err
	}
	if err := m.list(staging); err != nil {
		return nil, err
	}
	return m, writeArchive(staging, out, m)
}

// isSQLite tells whether the file at p is a SQLite database.
func isSQLite(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return bytes.Equal(head[:n], sqliteHeader), nil
}

// copyFile copies src to dst (created, with src's permissions).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	o, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

// list fills m.Files from the files under dir, sorted by path.
func (m *manifest) list(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, backupFile{Path: filepath.ToSlash(rel), Mode: fi.Mode().Perm(), Size: fi.Size(), SHA256: sum})
		return nil
	})
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeArchive writes the manifest and then m.Files from dir as a tar.gz
// at out: into a temporary file beside it, synced, then renamed, so that
// out is a whole archive or nothing. It is created 0600: it holds keys.
func writeArchive(dir, out string, m *manifest) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".signpost-backup-*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	zw := gzip.NewWriter(tmp)
	tw := tar.NewWriter(zw)
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	mj = append(mj, '\n')
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(mj)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(mj); err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := addToTar(tw, filepath.Join(dir, filepath.FromSlash(f.Path)), f, m.Created); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func addToTar(tw *tar.Writer, p string, f backupFile, mod time.Time) error {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := tw.WriteHeader(&tar.Header{Name: "data/" + f.Path, Mode: int64(f.Mode), Size: f.Size, ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, in, f.Size)
	return err
}

// restoreCmd restores a backup into a new data directory.
func restoreCmd(args []string) error {
	fs := newFlags("restore")
	in := fs.String("in", "", "the backup file (from signpost backup)")
	data := fs.String("data", "", "the data directory to restore into: it must not exist, or be empty")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" || *data == "" {
		return errors.New("restore: --in FILE and --data DIR are required")
	}
	m, err := restore(*in, *data)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(os.Stderr, "restored %s (taken %s, store %q) into %s: %d files\n",
		*in, m.Created.Format(time.RFC3339), m.Store, *data, len(m.Files))
	return nil
}

// restore extracts the archive at in into a staging directory beside data,
// checks every file against the manifest (size and SHA-256, none missing,
// none more), and renames it to data, which must not exist or be empty.
func restore(in, data string) (*manifest, error) {
	if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: restore into a new directory", data)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(data))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(parent, ".signpost-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging) // gone once renamed
	m, err := extract(in, staging)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if err := syncTree(staging); err != nil {
		return nil, err
	}
	os.Remove(data) // empty, or absent
	if err := os.Rename(staging, data); err != nil {
		return nil, err
	}
	return m, nil
}

// extract writes the archive's data/ files under dir and checks them
// against its manifest.
func extract(in, dir string) (*manifest, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("not a signpost backup: %w", err)
	}
	tr := tar.NewReader(zr)
	var m *manifest
	want := map[string]backupFile{}
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if m == nil {
			if h.Name != manifestName {
				return nil, fmt.Errorf("not a signpost backup: its first entry is %q, not %s", h.Name, manifestName)
			}
			m = &manifest{}
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(m); err != nil {
				return nil, fmt.Errorf("%s: %w", manifestName, err)
			}
			if m.Format != backupFormat {
				return nil, fmt.Errorf("backup format %d; this release reads format %d", m.Format, backupFormat)
			}
			for _, bf := range m.Files {
				want[bf.Path] = bf
			}
			continue
		}
		rel, ok := strings.CutPrefix(h.Name, "data/")
		bf, listed := want[rel]
		if !ok || h.Typeflag != tar.TypeReg || !fs.ValidPath(rel) || !listed || seen[rel] {
			return nil, fmt.Errorf("unexpected entry %q", h.Name)
		}
		seen[rel] = true
		if err := writeChecked(tr, filepath.Join(dir, filepath.FromSlash(rel)), bf); err != nil {
			return nil, err
		}
	}
	if m == nil {
		return nil, errors.New("not a signpost backup: empty archive")
	}
	for _, bf := range m.Files {
		if !seen[bf.Path] {
			return nil, fmt.Errorf("%s is listed but missing: the archive is truncated", bf.Path)
		}
	}
	return m, nil
}

// writeChecked writes r's content to p, checking its size and SHA-256.
func writeChecked(r io.Reader, p string, bf backupFile) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	o, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, bf.Mode.Perm()|0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(o, h), io.LimitReader(r, bf.Size+1))
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != bf.Size || hex.EncodeToString(h.Sum(nil)) != bf.SHA256 {
		return fmt.Errorf("%s: content differs from the manifest's (%d bytes): the archive is damaged", bf.Path, n)
	}
	return nil
}

// syncTree fsyncs every file and directory under dir.
func syncTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return err
	}
	slices.Reverse(paths) // files before their directories
	for _, p := range append(paths, filepath.Dir(dir)) {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", p, err)
		}
	}
	return nil
}
