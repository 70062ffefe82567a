package booking

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// FuzzProposalToken checks the $find proposal tokens a client sends back
// as an Appointment id. Any token: verify never panics and refuses with
// an Unprocessable error. Any body signed with the key (so the parser
// behind the signature check is reached, as it would be with a leaked
// key): verify never panics, and what it accepts, signed again, verifies
// to the same proposal. Any proposal of valid ids: a token signed inline is a valid
// FHIR id and verifies to the same proposal. Stored tokens (a store
// record behind them) are left to the store's tests.
func FuzzProposalToken(f *testing.F) {
	b := &Service{key: []byte(strings.Repeat("k", 32))}
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(15 * time.Minute)
	f.Add("", []byte{}, "s1", "p1", "")
	f.Add("Xyz-.", []byte{tokenInline | 1, 0x6b, 0x49, 0xd5, 0x00, 2, 0, 0}, "0b8a4e52-5a0c-4d5f-9a53-1c2d3e4f5a6b", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "")
	f.Add("QUJD", []byte{tokenInline | 2, 0xff, 0xff, 0xff, 0xff, 0xff}, "slot-0000123", "pat-12", "7c9e6679-7425-40de-944b-e07fc1f90ae7")
	f.Add(strings.Repeat("A", 64), []byte{tokenStored, 0, 0, 0, 0}, strings.Repeat("s", 64), "", "r")
	f.Fuzz(func(t *testing.T, token string, body []byte, slot, patient, referral string) {
		ctx := context.Background()
		if _, err := b.verify(ctx, token, now); err != nil && fhir.KindOf(err) != fhir.Unprocessable {
			t.Fatalf("verify(%q): error of kind %v, want Unprocessable: %v", token, fhir.KindOf(err), err)
		}
		if len(body) > 0 && body[0]&^63 != tokenStored {
			signed := tokenEncoding.EncodeToString(append(slices.Clone(body), b.mac(body)...))
			p, err := b.verify(ctx, signed, now)
			if err == nil {
				// Re-signed, it names the same proposal (the bytes may
				// differ: padding bits, an id that is a UUID's text).
				if again, ok := b.signInline(p); ok {
					p2, err := b.verify(ctx, again, now)
					if err != nil || !slices.Equal(p2.Slots, p.Slots) || p2.Patient != p.Patient || p2.Referral != p.Referral || !p2.Expires.Equal(p.Expires) {
						t.Fatalf("body %x verifies to %+v, which re-signed verifies to %+v, %v", body, p, p2, err)
					}
				}
			} else if fhir.KindOf(err) != fhir.Unprocessable {
				t.Fatalf("verify of signed body %x: error of kind %v: %v", body, fhir.KindOf(err), err)
			}
		}
		if !fhir.ValidID(slot) || (patient != "" && !fhir.ValidID(patient)) || (referral != "" && !fhir.ValidID(referral)) {
			return
		}
		p := proposal{Slots: []string{slot}, Patient: patient, Referral: referral, Expires: exp}
		tok, ok := b.signInline(p)
		if !ok {
			return
		}
		if !fhir.ValidID(tok) {
			t.Fatalf("token %q of %+v is not a valid FHIR id", tok, p)
		}
		got, err := b.verify(ctx, tok, now)
		if err != nil {
			t.Fatalf("verify of the token of %+v: %v", p, err)
		}
		if !slices.Equal(got.Slots, p.Slots) || got.Patient != p.Patient || got.Referral != p.Referral || !got.Expires.Equal(exp) {
			t.Fatalf("verify = %+v, want %+v", got, p)
		}
	})
}
