package booking

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
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
	Slots    []string  `json:"slots"`              // Slot ids, in time order
	Patient  string    `json:"patient,omitempty"`  // Patient id, "" when unknown
	Referral string    `json:"referral,omitempty"` // ServiceRequest id, "" when none
	Expires  time.Time `json:"-"`                  // second precision
}

// A proposal token is opaque to clients and a valid FHIR id: at most 64
// characters of tokenEncoding's alphabet, which is exactly the characters
// an id allows. It comes in two forms, told apart by the top two bits of
// its first byte:
//
//   - inline: the proposal itself, signed. First byte 01 and the slot
//     count (6 bits), the expiry (4 bytes, unix seconds), each slot id, the
//     patient id and the referral id (see appendID), and a truncated
//     HMAC-SHA256 of all that. Used when it fits in 64 characters, which
//     holds one slot and one patient whose ids are UUIDs, or short ids
//     with a referral.
//   - stored: a reference to a store record (store.Records, kind
//     ProposalRecordKind) that holds the proposals of one $find, signed.
//     First byte 10, the expiry, the record key (12 random bytes), the
//     proposal's index in the record, and the truncated HMAC: 34
//     characters whatever the ids. Used for proposals too long to inline.
//
// Both expire with the proposal; the record expires with it too.
const (
	tokenInline = 1 << 6
	tokenStored = 2 << 6
	maxTokenLen = 64
	macLen      = 8
	recordKey   = 12
)

// ProposalRecordKind is the store.Records kind of the records behind $find
// proposals too long to carry their ids inline.
const ProposalRecordKind = "proposal"

// tokenEncoding is base64 over the characters a FHIR id allows.
var tokenEncoding = base64.NewEncoding(idAlphabet).WithPadding(base64.NoPadding)

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."

// proposalRecord is the stored form of one $find's long proposals.
type proposalRecord struct {
	Patient  string     `json:"patient,omitempty"`
	Referral string     `json:"referral,omitempty"`
	Slots    [][]string `json:"slots"`
}

func (b *Service) mac(body []byte) []byte {
	m := hmac.New(sha256.New, b.key)
	m.Write(body)
	return m.Sum(nil)[:macLen]
}

// signInline encodes p inline; ok is false when the token would be longer
// than an id may be.
func (b *Service) signInline(p proposal) (token string, ok bool) {
	if len(p.Slots) == 0 || len(p.Slots) >= 1<<6 {
		return "", false
	}
	buf := []byte{tokenInline | byte(len(p.Slots))}
	buf = binary.BigEndian.AppendUint32(buf, uint32(p.Expires.Unix()))
	for _, s := range p.Slots {
		buf = appendID(buf, s)
	}
	buf = appendID(buf, p.Patient)
	buf = appendID(buf, p.Referral)
	if tokenEncoding.EncodedLen(len(buf)+macLen) > maxTokenLen {
		return "", false
	}
	return tokenEncoding.EncodeToString(append(buf, b.mac(buf)...)), true
}

// signStored encodes a reference to proposal i of the record key.
func (b *Service) signStored(key []byte, i int, expires time.Time) string {
	buf := []byte{tokenStored}
	buf = binary.BigEndian.AppendUint32(buf, uint32(expires.Unix()))
	buf = append(buf, key...)
	buf = append(buf, byte(i))
	return tokenEncoding.EncodeToString(append(buf, b.mac(buf)...))
}

// sign returns the tokens of props, which expire together: inline where
// they fit, otherwise one store record (written here, in its own
// transaction) for all the rest.
func (b *Service) sign(ctx context.Context, props []proposal) ([]string, error) {
	tokens := make([]string, len(props))
	var rec proposalRecord
	var long []int
	for i, p := range props {
		if t, ok := b.signInline(p); ok {
			tokens[i] = t
			continue
		}
		if len(long) == 0 {
			rec.Patient, rec.Referral = p.Patient, p.Referral
		}
		long = append(long, i)
		rec.Slots = append(rec.Slots, p.Slots)
	}
	if len(long) == 0 {
		return tokens, nil
	}
	if len(long) > 256 {
		return nil, fmt.Errorf("booking: %d long proposals in one $find; at most 256", len(long))
	}
	key := make([]byte, recordKey)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("booking: generating a proposal key: %w", err)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	expires := props[long[0]].Expires
	err = b.repo.Update(write.AsServer(ctx), func(ctx context.Context, tx *write.Tx) error {
		rtx, ok := tx.Tx.(store.RecordTx)
		if !ok {
			return fhir.Errorf(fhir.Other, "not-supported", "",
				"the store keeps no records, so proposals whose slot, patient and referral ids are too long to sign inline cannot be offered")
		}
		return rtx.PutRecord(ctx, ProposalRecordKind, hex.EncodeToString(key), raw, expires)
	})
	if err != nil {
		return nil, err
	}
	for j, i := range long {
		tokens[i] = b.signStored(key, j, expires)
	}
	return tokens, nil
}

// appendID appends an id: a UUID as 0 and its 16 bytes, "" as 0xff,
// anything else as its length (1-64) and its characters packed six bits
// each (an id's characters are the 64 of idAlphabet).
func appendID(buf []byte, id string) []byte {
	if u, err := uuid.Parse(id); err == nil && u.String() == id {
		return append(append(buf, 0), u[:]...)
	}
	if id == "" {
		return append(buf, 0xff)
	}
	buf = append(buf, byte(len(id)))
	var acc uint32
	bits := 0
	for i := 0; i < len(id); i++ {
		acc = acc<<6 | uint32(strings.IndexByte(idAlphabet, id[i]))
		bits += 6
		for bits >= 8 {
			bits -= 8
			buf = append(buf, byte(acc>>bits))
		}
	}
	if bits > 0 {
		buf = append(buf, byte(acc<<(8-bits)))
	}
	return buf
}

// readID reads an id written by appendID.
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
	case n <= 64:
		size := (6*n + 7) / 8
		if len(b) < 1+size {
			return "", nil, false
		}
		out := make([]byte, n)
		var acc uint32
		bits, j := 0, 1
		for i := range out {
			for bits < 6 {
				acc = acc<<8 | uint32(b[j])
				j++
				bits += 8
			}
			bits -= 6
			out[i] = idAlphabet[acc>>bits&63]
		}
		return string(out), b[1+size:], true
	}
	return "", nil, false
}

// verify decodes a proposal token made by sign, checking its signature
// and expiry at now (and, for a stored one, reading its record).
func (b *Service) verify(ctx context.Context, token string, now time.Time) (proposal, error) {
	invalid := func(why string) (proposal, error) {
		return proposal{}, fhir.Errorf(fhir.Unprocessable, "invalid", "appointment-reference",
			"Appointment/%s is not a current proposal from $find: %s", token, why).WithDetails(ErrProposalInvalid)
	}
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil || len(raw) < 1+4+macLen {
		return invalid("it is not a proposal token")
	}
	body, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !hmac.Equal(b.mac(body), mac) {
		return invalid("its signature does not match")
	}
	p := proposal{Expires: time.Unix(int64(binary.BigEndian.Uint32(body[1:])), 0)}
	if !now.Before(p.Expires) {
		return invalid("it expired at " + p.Expires.UTC().Format(time.RFC3339) + "; run $find again")
	}
	rest := body[5:]
	switch body[0] &^ 63 {
	case tokenInline:
		var id string
		var ok bool
		for range int(body[0] & 63) {
			if id, rest, ok = readID(rest); !ok || id == "" {
				return invalid("it is malformed")
			}
			p.Slots = append(p.Slots, id)
		}
		if p.Patient, rest, ok = readID(rest); !ok {
			return invalid("it is malformed")
		}
		if p.Referral, rest, ok = readID(rest); !ok || len(rest) != 0 || len(p.Slots) == 0 {
			return invalid("it is malformed")
		}
		return p, nil
	case tokenStored:
		if len(rest) != recordKey+1 {
			return invalid("it is malformed")
		}
		rs, ok := b.repo.Store().(store.Records)
		if !ok {
			return invalid("this store keeps no proposals")
		}
		raw, err := rs.GetRecord(ctx, ProposalRecordKind, hex.EncodeToString(rest[:recordKey]))
		if fhir.KindOf(err) == fhir.NotFound {
			return invalid("it has expired; run $find again")
		} else if err != nil {
			return proposal{}, err
		}
		var rec proposalRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return proposal{}, fmt.Errorf("booking: proposal record: %w", err)
		}
		i := int(rest[recordKey])
		if i >= len(rec.Slots) || len(rec.Slots[i]) == 0 {
			return invalid("it is malformed")
		}
		p.Slots, p.Patient, p.Referral = rec.Slots[i], rec.Patient, rec.Referral
		return p, nil
	}
	return invalid("it is not a proposal token")
}
