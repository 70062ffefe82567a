package booking

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/fhir"
)

// KeyFile is the name, inside the data directory, of the key that signs
// $find proposals.
const KeyFile = "booking-proposal.key"

// LoadKey returns the proposal signing key kept in dir, creating a random
// one (readable by the owner only) the first time. With dir "" the key is
// random and lasts as long as the process.
func LoadKey(dir string) ([]byte, error) {
	if dir == "" {
		return newKey()
	}
	path := filepath.Join(dir, KeyFile)
	key, err := os.ReadFile(path)
	switch {
	case err == nil && len(key) >= 32:
		return key, nil
	case err == nil:
		return nil, fmt.Errorf("booking: the key in %s is shorter than 32 bytes", KeyFile)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("booking: reading the proposal key: %w", err)
	}
	if key, err = newKey(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("booking: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first
		return LoadKey(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("booking: creating the proposal key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("booking: writing the proposal key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("booking: writing the proposal key: %w", err)
	}
	return key, f.Close()
}

func newKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("booking: generating a key: %w", err)
	}
	return key, nil
}

// proposal is what a $find result's id stands for.
type proposal struct {
	Slots   []string  // Slot ids, in time order
	Patient string    // Patient id, "" when unknown
	Expires time.Time // second precision
}

// tokenEncoding is base64 over the characters a FHIR id allows, so a
// proposal token is a valid id when short enough (64 characters holds one
// slot and one patient whose ids are UUIDs).
var tokenEncoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.").WithPadding(base64.NoPadding)

const macLen = 8

// sign encodes p as a token: expiry (4 bytes, unix seconds), slot count,
// the ids (a UUID as 0 + 16 bytes, anything else as its length + bytes),
// the patient id the same way (length 0 for none), then a truncated
// HMAC-SHA256 of all that.
func (b *Service) sign(p proposal) string {
	buf := binary.BigEndian.AppendUint32(nil, uint32(p.Expires.Unix()))
	buf = append(buf, byte(len(p.Slots)))
	for _, s := range p.Slots {
		buf = appendID(buf, s)
	}
	buf = appendID(buf, p.Patient)
	m := hmac.New(sha256.New, b.key)
	m.Write(buf)
	return tokenEncoding.EncodeToString(m.Sum(buf)[:len(buf)+macLen])
}

func appendID(buf []byte, id string) []byte {
	if u, err := uuid.Parse(id); err == nil && u.String() == id {
		return append(append(buf, 0), u[:]...)
	}
	if id == "" {
		return append(buf, 0xff)
	}
	return append(append(buf, byte(len(id))), id...)
}

// verify decodes a token made by sign, checking its signature and expiry
// at now.
func (b *Service) verify(token string, now time.Time) (proposal, error) {
	invalid := func(why string) (proposal, error) {
		return proposal{}, fhir.Errorf(fhir.Unprocessable, "invalid", "appointment-reference",
			"Appointment/%s is not a current proposal from $find: %s", token, why).WithDetails(ErrProposalInvalid)
	}
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil || len(raw) < 4+1+1+macLen {
		return invalid("it is not a proposal token")
	}
	body, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	m := hmac.New(sha256.New, b.key)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:macLen], mac) {
		return invalid("its signature does not match")
	}
	p := proposal{Expires: time.Unix(int64(binary.BigEndian.Uint32(body)), 0)}
	n := int(body[4])
	rest := body[5:]
	var id string
	var ok bool
	for range n {
		if id, rest, ok = readID(rest); !ok || id == "" {
			return invalid("it is malformed")
		}
		p.Slots = append(p.Slots, id)
	}
	if p.Patient, rest, ok = readID(rest); !ok || len(rest) != 0 {
		return invalid("it is malformed")
	}
	if !now.Before(p.Expires) {
		return invalid("it expired at " + p.Expires.UTC().Format(time.RFC3339) + "; run $find again")
	}
	return p, nil
}

func readID(b []byte) (string, []byte, bool) {
	if len(b) == 0 {
		return "", nil, false
	}
	switch n := int(b[0]); {
	case n == 0xff:
		return "", b[1:], true
	case n == 0:
		if len(b) < 17 {
			return "", nil, false
		}
		u, _ := uuid.FromBytes(b[1:17])
		return u.String(), b[17:], true
	case len(b) >= 1+n:
		return string(b[1 : 1+n]), b[1+n:], true
	}
	return "", nil, false
}
