package booking

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var validID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// TestInlineProposalTokens: a proposal that fits is signed inline, decodes
// to what it named, and is a valid FHIR id; one that does not fit is
// refused inline (sign stores it instead).
func TestInlineProposalTokens(t *testing.T) {
	b := &Service{key: []byte(strings.Repeat("k", 32))}
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(15 * time.Minute)
	for _, tc := range []struct {
		name   string
		p      proposal
		inline bool
	}{
		{"uuids, no referral", proposal{Slots: []string{"0b8a4e52-5a0c-4d5f-9a53-1c2d3e4f5a6b"}, Patient: "7c9e6679-7425-40de-944b-e07fc1f90ae7"}, true},
		{"short ids and a uuid referral", proposal{Slots: []string{"slot-0000123"}, Patient: "pat-12", Referral: "7c9e6679-7425-40de-944b-e07fc1f90ae7"}, true},
		{"no patient", proposal{Slots: []string{"a"}}, true},
		{"every id character", proposal{Slots: []string{"Az09-.zA"}, Patient: "x.y-Z"}, true},
		{"two slots", proposal{Slots: []string{"s1", "s2"}, Patient: "p"}, true},
		{"long ids", proposal{Slots: []string{strings.Repeat("s", 64)}, Patient: strings.Repeat("p", 64)}, false},
		{"uuids and a referral", proposal{Slots: []string{"0b8a4e52-5a0c-4d5f-9a53-1c2d3e4f5a6b"}, Patient: "7c9e6679-7425-40de-944b-e07fc1f90ae7", Referral: "a3bb189e-8bf9-3888-9912-ace4e6543002"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Expires = exp
			tok, ok := b.signInline(tc.p)
			if ok != tc.inline {
				t.Fatalf("signInline ok = %v, want %v (token %q)", ok, tc.inline, tok)
			}
			if !ok {
				return
			}
			if !validID.MatchString(tok) {
				t.Errorf("token %q (%d characters) is not a valid FHIR id", tok, len(tok))
			}
			got, err := b.verify(context.Background(), tok, now)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !slices.Equal(got.Slots, tc.p.Slots) || got.Patient != tc.p.Patient || got.Referral != tc.p.Referral || !got.Expires.Equal(exp) {
				t.Errorf("verify = %+v, want %+v", got, tc.p)
			}
			if _, err := b.verify(context.Background(), tok, exp); err == nil {
				t.Errorf("verify at the expiry succeeded, want expired")
			}
			forged := []byte(tok)
			forged[len(forged)/2] ^= 1 // one character changed
			if _, err := b.verify(context.Background(), string(forged), now); err == nil {
				t.Errorf("verify of a changed token succeeded")
			}
		})
	}
}

// TestIDPacking: every id appendID packs reads back the same.
func TestIDPacking(t *testing.T) {
	for _, id := range []string{"", "a", "ab", "abc", "abcd", "A-.9", strings.Repeat("z", 63), strings.Repeat("0.", 32),
		"0b8a4e52-5a0c-4d5f-9a53-1c2d3e4f5a6b", "0B8A4E52-5A0C-4D5F-9A53-1C2D3E4F5A6B"} {
		buf := appendID([]byte{7}, id)
		got, rest, ok := readID(buf[1:])
		if !ok || got != id || len(rest) != 0 {
			t.Errorf("readID(appendID(%q)) = %q, %d left, %v", id, got, len(rest), ok)
		}
	}
}

// BenchmarkSignInline measures signing one proposal inline.
func BenchmarkSignInline(b *testing.B) {
	s := &Service{key: []byte(strings.Repeat("k", 32))}
	p := proposal{Slots: []string{"slot-0000123"}, Patient: "pat-000012", Expires: time.Now().Add(time.Minute)}
	for b.Loop() {
		s.signInline(p)
	}
}
