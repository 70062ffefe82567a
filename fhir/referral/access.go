package referral

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/repo"
	"github.com/signpost-fhir/signpost/store"
)

// accessAlphabet leaves out look-alikes (0/O, 1/I/L) for codes read out on
// the phone.
const accessAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// newAccessCode returns a 12-character code as XXXX-XXXX-XXXX (about 59
// bits) and its stored form, sha256$<salt>$<hash>.
func newAccessCode() (code, stored string, err error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	var sb strings.Builder
	for i, x := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(accessAlphabet[int(x)%len(accessAlphabet)])
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", "", err
	}
	code = sb.String()
	return code, hashCode(salt, code), nil
}

func normaliseCode(code string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
}

func hashCode(salt []byte, code string) string {
	h := sha256.Sum256(append(append([]byte{}, salt...), normaliseCode(code)...))
	return "sha256$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + hex.EncodeToString(h[:])
}

// codeMatches compares code with a stored hash in constant time.
func codeMatches(stored, code string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 3 || parts[0] != "sha256" {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashCode(salt, code)), []byte(stored)) == 1
}

// AccessCodeRecord is the store.Records kind of access-code records: the
// salted hash of a referral's current access code, kept outside every FHIR
// resource so that no one who can read the referral or its Task can read
// it (or try codes against it offline). The Task's extension
// AccessExtension holds only the record's key, a random id; a new code gets
// a new record and key, so the old code stops working at once, and its
// record is left to expire.
const AccessCodeRecord = "access-code"

// accessRecord is the value of an access-code record.
type accessRecord struct {
	Referral string `json:"referral"` // "ServiceRequest/id"
	Hash     string `json:"hash"`     // sha256$salt$hash
}

// newRecordID returns a random record key.
func newRecordID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// accessCodeOp is ServiceRequest/{id}/$access-code: a new access code for
// the patient, returned once; only its salted hash is kept (in a store
// record, see AccessCodeRecord), and a new code replaces the old.
func (s *Service) accessCodeOp() *operation.Operation {
	return &operation.Operation{
		Name: "access-code", Types: []string{"ServiceRequest"}, Instance: true, Affects: true, Access: "update",
		Definition: definition("ServiceRequest-access-code"),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			code, stored, err := newAccessCode()
			if err != nil {
				return nil, err
			}
			key, err := newRecordID()
			if err != nil {
				return nil, err
			}
			var ubrn string
			err = s.repo.Update(ctx, func(ctx context.Context, tx *repo.Tx) error {
				sr, err := tx.Read(ctx, "ServiceRequest", req.ID)
				if err != nil {
					return err
				}
				var r requestView
				if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
					return err
				}
				ubrn = r.ubrn()
				task, err := s.referralTask(ctx, tx, sr.Reference())
				if err != nil {
					return err
				}
				var tv taskView
				if err := decode(task.JSON, &tv, "Task"); err != nil {
					return err
				}
				if st := tv.state(); st == Cancelled || st == Completed {
					return fhir.Errorf(fhir.Unprocessable, "business-rule", "", "referral %s is %s: no access code can be issued", sr.Reference(), st)
				}
				rtx, ok := tx.Tx.(store.RecordTx)
				if !ok {
					return fhir.Errorf(fhir.NotSupported, "not-supported", "", "this store keeps no records: access codes cannot be issued")
				}
				rec, err := json.Marshal(accessRecord{Referral: sr.Reference(), Hash: stored})
				if err != nil {
					return err
				}
				if err := rtx.PutRecord(ctx, AccessCodeRecord, key, rec, tx.Now().Add(s.cfg.AccessCodeTTL)); err != nil {
					return err
				}
				obj, err := fhir.ParseObject(task.JSON)
				if err != nil {
					return err
				}
				if err := obj.SetExtensions(AccessExtension, extension{URL: AccessExtension, ValueString: &key}); err != nil {
					return err
				}
				// The code's record is the referral's: whoever may update the
				// referral may replace it.
				ctx = repo.AsConsequence(ctx, repo.Consequence{Type: "Task", ID: task.ID, Grant: repo.ToWritersOf,
					On: []string{sr.Reference()}, Of: "$access-code " + sr.Reference()})
				_, _, err = tx.Put(internal(ctx), "Task", task.ID, obj, 0)
				return err
			})
			if err != nil {
				return nil, err
			}
			out := &operation.Parameters{Parameter: []operation.Parameter{
				{Name: "ubrn", ValueType: "String", Value: mustJSON(ubrn)},
				{Name: "access-code", ValueType: "String", Value: mustJSON(code)},
			}}
			return &operation.Result{Body: out.Encode(), Header: http.Header{"Cache-Control": {"no-store"}}}, nil
		},
	}
}

// errNoMatch is the one answer to every wrong $ubrn-access input, so that
// none of them tells a guesser which part was right.
func errNoMatch() error {
	return fhir.Errorf(fhir.NotFound, "not-found", "", "no referral matches this UBRN, access code and date of birth").WithDetails("NO_MATCHING_REFERRAL")
}

// ubrnAccessOp is POST ServiceRequest/$ubrn-access: a UBRN, access code and
// birth date exchanged for a short-lived token limited to the referral and
// its patient.
func (s *Service) ubrnAccessOp() *operation.Operation {
	return &operation.Operation{
		Name: "ubrn-access", Types: []string{"ServiceRequest"}, TypeLevel: true, Affects: true,
		Definition: definition("ServiceRequest-ubrn-access"),
		Public:     true, // the UBRN, access code and birth date are the credentials
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			ubrn, _ := req.Params.String("ubrn")
			code, _ := req.Params.String("access-code")
			birth, _ := req.Params.String("birthdate")
			if ubrn == "" || code == "" || birth == "" {
				return nil, fhir.Errorf(fhir.Invalid, "required", "", "$ubrn-access needs ubrn, access-code and birthdate")
			}
			now := s.cfg.Now()
			if wait := s.limiter.blocked(ubrn, now); wait > 0 {
				e := fhir.Errorf(fhir.TooManyRequests, "throttled", "",
					"too many failed attempts for this UBRN: try again in %d minutes", int(wait.Minutes())+1).WithDetails("TOO_MANY_ATTEMPTS")
				return nil, e
			}
			patient, referral, ok, err := s.checkAccess(ctx, ubrn, code, birth)
			if err != nil {
				return nil, err
			}
			if !ok {
				s.limiter.fail(ubrn, now)
				return nil, errNoMatch()
			}
			if s.Tokens == nil {
				return nil, fhir.Errorf(fhir.Other, "exception", "", "no authorisation server is configured to issue referral tokens")
			}
			tok, err := s.Tokens.MintReferralToken(ctx, patient, referral, s.cfg.TokenTTL)
			if err != nil {
				return nil, err
			}
			out := &operation.Parameters{Parameter: []operation.Parameter{
				{Name: "access_token", ValueType: "String", Value: mustJSON(tok)},
				{Name: "token_type", ValueType: "String", Value: mustJSON("Bearer")},
				{Name: "expires_in", ValueType: "Integer", Value: []byte(strconv.Itoa(int(s.cfg.TokenTTL.Seconds())))},
				{Name: "patient", ValueType: "Reference", Value: mustJSON(reference{Reference: "Patient/" + patient})},
				{Name: "referral", ValueType: "Reference", Value: mustJSON(reference{Reference: "ServiceRequest/" + referral})},
			}}
			return &operation.Result{Body: out.Encode(), Header: http.Header{"Cache-Control": {"no-store"}}}, nil
		},
	}
}

// checkAccess finds the referral with ubrn and checks the code and the
// patient's birth date. Every mismatch is just ok == false.
func (s *Service) checkAccess(ctx context.Context, ubrn, code, birth string) (patient, referral string, ok bool, err error) {
	if !validUBRN(ubrn) {
		return "", "", false, nil
	}
	st := s.repo.Store()
	srs, err := find(ctx, st, s.reg, "ServiceRequest", "identifier="+UBRNSystem+"|"+ubrn)
	if err != nil || len(srs) != 1 {
		return "", "", false, err
	}
	sr := srs[0]
	tasks, err := find(ctx, st, s.reg, "Task", "focus=ServiceRequest/"+sr.ID+"&code="+TaskCodeSystem+"|"+TaskCode)
	if err != nil || len(tasks) == 0 {
		return "", "", false, err
	}
	var tv taskView
	if err := decode(tasks[0].JSON, &tv, "Task"); err != nil {
		return "", "", false, err
	}
	keys := findExt(tv.Extension, AccessExtension)
	rs, isRecords := st.(store.Records)
	if len(keys) == 0 || keys[0].ValueString == nil || !isRecords {
		return "", "", false, nil
	}
	raw, err := rs.GetRecord(ctx, AccessCodeRecord, *keys[0].ValueString)
	if fhir.KindOf(err) == fhir.NotFound { // expired
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	var rec accessRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return "", "", false, fmt.Errorf("access-code record of %s: %w", sr.Reference(), err)
	}
	if rec.Referral != sr.Reference() || !codeMatches(rec.Hash, code) {
		return "", "", false, nil
	}
	if st := tv.state(); st == Cancelled || st == Completed {
		return "", "", false, nil
	}
	var r requestView
	if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
		return "", "", false, err
	}
	typ, pid, okRef := fhir.SplitReference(r.Subject.Reference)
	if !okRef || typ != "Patient" {
		return "", "", false, nil
	}
	p, err := st.Read(ctx, "Patient", pid)
	if err != nil {
		return "", "", false, nil
	}
	var pv struct {
		BirthDate string `json:"birthDate"`
	}
	_ = decode(p.JSON, &pv, "Patient")
	if pv.BirthDate == "" || subtle.ConstantTimeCompare([]byte(pv.BirthDate), []byte(birth)) != 1 {
		return "", "", false, nil
	}
	return pid, sr.ID, true, nil
}

// limiter counts failed attempts per key in a sliding window.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string][]time.Time
	swept  time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, fails: map[string][]time.Time{}}
}

// blocked returns how long key stays blocked, or 0.
func (l *limiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(key, now)
	f := l.fails[key]
	if len(f) < l.max {
		return 0
	}
	return f[len(f)-l.max].Add(l.window).Sub(now)
}

func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(key, now)
	l.fails[key] = append(l.fails[key], now)
	if now.Sub(l.swept) > l.window {
		for k := range l.fails {
			l.prune(k, now)
		}
		l.swept = now
	}
}

func (l *limiter) prune(key string, now time.Time) {
	f := l.fails[key]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	if i == len(f) {
		delete(l.fails, key)
		return
	}
	l.fails[key] = f[i:]
}
