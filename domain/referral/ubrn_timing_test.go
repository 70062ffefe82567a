package referral_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// ubrnFixture is a server with referrals that have access codes, for
// attempts at $ubrn-access.
type ubrnFixture struct {
	c     *client
	known []string // UBRNs of referrals with an access code
	used  map[string]int
	rng   *rand.Rand
}

func newUBRNFixture(t *testing.T) *ubrnFixture {
	c := newClient(t)
	c.a.Referral.Tokens = &fakeTokens{}
	loadDirectory(c)
	return &ubrnFixture{c: c, used: map[string]int{}, rng: rand.New(rand.NewPCG(1, 2))}
}

// referral creates a referral with an access code and returns its UBRN
// and code.
func (f *ubrnFixture) referral() (ubrn, code string) {
	sr := f.c.must(201, "POST", "/ServiceRequest", dermReferral(nil))
	out := f.c.must(200, "POST", "/ServiceRequest/"+sr["id"].(string)+"/$access-code", params())
	ubrn, code = ubrnOf(sr), get(out, "parameter", 1, "valueString").(string)
	f.known = append(f.known, ubrn)
	return ubrn, code
}

// knownUBRN returns a known UBRN that has failed fewer than four times (the
// lockout comes after five), creating a referral when none has.
func (f *ubrnFixture) knownUBRN() string {
	for _, u := range f.known {
		if f.used[u] < 4 {
			f.used[u]++
			return u
		}
	}
	u, _ := f.referral()
	f.used[u]++
	return u
}

// unknownUBRN returns a well-formed UBRN no referral has.
func (f *ubrnFixture) unknownUBRN() string {
	for {
		u := fmt.Sprintf("9%011d", f.rng.Int64N(1e11))
		if !slices.Contains(f.known, u) {
			return u
		}
	}
}

// attempt sends $ubrn-access with a wrong code and returns the status,
// the answer and how long it took.
func (f *ubrnFixture) attempt(ubrn string) (int, []byte, time.Duration) {
	body := params("ubrn", ubrn, "access-code", fmt.Sprintf("WXYZ-%04d-QRST", f.rng.IntN(10000)), "birthdate", "1980-05-17")
	start := time.Now()
	status, raw := f.c.raw("POST", "/ServiceRequest/$ubrn-access", body)
	return status, raw, time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestUBRNAccessTiming: the time $ubrn-access takes does not tell whether
// a UBRN exists. 200 attempts with unknown UBRNs and 200 with known UBRNs
// and a wrong code, interleaved, must have medians within 10% of each
// other. A noisy machine gets three measurements; one within bounds is
// enough (a real difference shows in all three).
func TestUBRNAccessTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing measurement")
	}
	f := newUBRNFixture(t)
	const tries = 200
	for range 20 { // warm up both paths
		f.attempt(f.unknownUBRN())
		f.attempt(f.knownUBRN())
	}
	var report []string
	for round := 1; round <= 3; round++ {
		// Referrals for the round first, so that creating them is not timed.
		for len(f.known)*4 < tries*round+100 {
			f.referral()
		}
		var unknown, known []time.Duration
		for i := range tries {
			ubrns := []string{f.unknownUBRN(), f.knownUBRN()}
			if i%2 == 1 {
				ubrns[0], ubrns[1] = ubrns[1], ubrns[0]
			}
			for _, u := range ubrns {
				status, body, d := f.attempt(u)
				if status != 404 {
					t.Fatalf("attempt with UBRN %s: status %d, want 404: %s", u, status, body)
				}
				if slices.Contains(f.known, u) {
					known = append(known, d)
				} else {
					unknown = append(unknown, d)
				}
			}
		}
		mu, mk := median(unknown), median(known)
		diff := float64(max(mu, mk)-min(mu, mk)) / float64(min(mu, mk))
		report = append(report, fmt.Sprintf("round %d: median %v unknown, %v known (%.1f%%)", round, mu, mk, 100*diff))
		t.Log(report[len(report)-1])
		if diff < 0.10 {
			return
		}
	}
	t.Errorf("an unknown UBRN and a known one with a wrong code take measurably different times:\n%v", report)
}

// TestUBRNLockoutAlike: five failures lock a UBRN for a while, whether it
// exists or not, with the same answers; a locked known UBRN refuses even
// its right code.
func TestUBRNLockoutAlike(t *testing.T) {
	f := newUBRNFixture(t)
	known, code := f.referral()
	malformed := "12345"
	run := func(ubrn string) (statuses []int, details []string) {
		for range 7 {
			status, body, _ := f.attempt(ubrn)
			var oo struct {
				Issue []struct {
					Details struct {
						Coding []struct{ Code string } `json:"coding"`
					} `json:"details"`
				} `json:"issue"`
			}
			_ = json.Unmarshal(body, &oo)
			d := ""
			if len(oo.Issue) > 0 && len(oo.Issue[0].Details.Coding) > 0 {
				d = oo.Issue[0].Details.Coding[0].Code
			}
			statuses, details = append(statuses, status), append(details, d)
		}
		return statuses, details
	}
	wantStatus := []int{404, 404, 404, 404, 404, 429, 429}
	wantDetails := []string{"NO_MATCHING_REFERRAL", "NO_MATCHING_REFERRAL", "NO_MATCHING_REFERRAL", "NO_MATCHING_REFERRAL", "NO_MATCHING_REFERRAL", "TOO_MANY_ATTEMPTS", "TOO_MANY_ATTEMPTS"}
	for _, tc := range []struct{ name, ubrn string }{{"known", known}, {"unknown", f.unknownUBRN()}, {"malformed", malformed}} {
		statuses, details := run(tc.ubrn)
		if !slices.Equal(statuses, wantStatus) || !slices.Equal(details, wantDetails) {
			t.Errorf("%s UBRN: %v %v, want %v %v", tc.name, statuses, details, wantStatus, wantDetails)
		}
	}
	status, _ := f.c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", known, "access-code", code, "birthdate", "1980-05-17"))
	if status != 429 {
		t.Errorf("the right code for a locked UBRN: %d, want 429", status)
	}
	// Another referral's right code still works: the lockout is per UBRN.
	other, otherCode := f.referral()
	if status, body := f.c.do("POST", "/ServiceRequest/$ubrn-access", params("ubrn", other, "access-code", otherCode, "birthdate", "1980-05-17")); status != 200 {
		t.Errorf("another referral's right code: %d %v", status, body)
	}
}
