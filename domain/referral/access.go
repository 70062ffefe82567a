package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

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

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
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
// it (or try codes against it offline). The Task's r4.Extension
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
		Definition: conformance.OperationDefinition("ServiceRequest-access-code"),
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
			err = s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
				sr, err := tx.Read(ctx, "ServiceRequest", req.ID)
				if err != nil {
					return err
				}
				var r requestView
				if err := decode(sr.JSON, &r, "ServiceRequest"); err != nil {
					return err
				}
				ubrn = r.ubrn()
				task, tv, err := s.referralTaskView(ctx, tx, sr.Reference())
				if err != nil {
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
				if err := obj.SetExtensions(AccessExtension, r4.Extension{Url: AccessExtension, ValueString: &key}); err != nil {
					return err
				}
				// The code's record is the referral's: whoever may update the
				// referral may replace it.
				ctx = write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: task.ID, Grant: write.ToWritersOf,
					On: []string{sr.Reference()}, Of: "$access-code " + sr.Reference()})
				_, _, err = tx.PutWith(ctx, "Task", task.ID, obj, 0, own)
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
		Definition: conformance.OperationDefinition("ServiceRequest-ubrn-access"),
		Public:     true, // the UBRN, access code and birth date are the credentials
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			ubrn, _ := req.Params.String("ubrn")
			code, _ := req.Params.String("access-code")
			birth, _ := req.Params.String("birthdate")
			if ubrn == "" || code == "" || birth == "" {
				return nil, fhir.Errorf(fhir.Invalid, "required", "", "$ubrn-access needs ubrn, access-code and birthdate")
			}
			wait, err := s.attempts.blocked(ctx, ubrn)
			if err != nil {
				return nil, err
			}
			if wait > 0 {
				e := fhir.Errorf(fhir.TooManyRequests, "throttled", "",
					"too many failed attempts for this UBRN: try again in %d minutes", int(wait.Minutes())+1).WithDetails("TOO_MANY_ATTEMPTS")
				return nil, e
			}
			start := time.Now()
			patient, referral, ok, err := s.checkAccess(ctx, ubrn, code, birth)
			if err != nil {
				return nil, err
			}
			if !ok {
				if err := s.attempts.fail(ctx, ubrn); err != nil {
					return nil, err
				}
				padFailure(ctx, start)
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
				{Name: "patient", ValueType: "Reference", Value: mustJSON(elem.Ref("Patient/" + patient))},
				{Name: "referral", ValueType: "Reference", Value: mustJSON(elem.Ref("ServiceRequest/" + referral))},
			}}
			return &operation.Result{Body: out.Encode(), Header: http.Header{"Cache-Control": {"no-store"}}}, nil
		},
	}
}

// Stand-ins for what an attempt with an unknown UBRN lacks, so that it does
// the same work as one with a known UBRN and a wrong code or birth date.
const (
	absentUBRN = "000000000000" // searched for a malformed UBRN
	absentID   = "absent"       // a referral, access-code record or patient that is not there
)

// absentHash is the stored form of a code no one has, compared when the
// attempt found no access-code record.
var absentHash = sync.OnceValue(func() string {
	_, stored, err := newAccessCode()
	if err != nil {
		return "sha256$AAAAAAAAAAAAAAAAAAAAAA$" + strings.Repeat("0", 64)
	}
	return stored
})

// accessFloor is the least time a failed $ubrn-access attempt takes. The
// attempt does the same work whatever is wrong with it (checkAccess), but
// reading what exists costs a little more than missing what does not: the
// floor, well above an attempt's own time, hides the difference.
const accessFloor = 5 * time.Millisecond

// padFailure waits until accessFloor has passed since start.
func padFailure(ctx context.Context, start time.Time) {
	wait := accessFloor - time.Since(start)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// checkAccess finds the referral with ubrn and checks the code and the
// patient's birth date. Every mismatch is just ok == false, and every
// attempt does the same work whatever is wrong with it (the same store
// reads, a hash comparison, a birth-date comparison), so that the time an
// answer takes does not tell whether the UBRN exists.
func (s *Service) checkAccess(ctx context.Context, ubrn, code, birth string) (patient, referral string, ok bool, err error) {
	ok = validUBRN(ubrn)
	if !ok {
		ubrn = absentUBRN
	}
	st := s.repo.Store()
	srs, err := find(ctx, st, s.reg, "ServiceRequest", "identifier="+UBRNSystem+"|"+ubrn)
	if err != nil {
		return "", "", false, err
	}
	srRef, srJSON := "ServiceRequest/"+absentID, []byte(`{}`)
	if len(srs) == 1 {
		srRef, srJSON = srs[0].Reference(), srs[0].JSON
	} else {
		ok = false
	}
	tasks, err := find(ctx, st, s.reg, "Task", "focus="+srRef+"&code="+TaskCodeSystem+"|"+TaskCode)
	if err != nil {
		return "", "", false, err
	}
	taskJSON := []byte(`{}`)
	if len(tasks) > 0 {
		taskJSON = tasks[0].JSON
	} else {
		ok = false
	}
	var tv taskView
	if err := decode(taskJSON, &tv, "Task"); err != nil {
		return "", "", false, err
	}
	key := absentID
	if keys := elem.Extensions(tv.Extension, AccessExtension); len(keys) > 0 && keys[0].ValueString != nil {
		key = *keys[0].ValueString
	} else {
		ok = false
	}
	rec := accessRecord{Hash: absentHash()}
	if rs, isRecords := st.(store.Records); isRecords {
		raw, err := rs.GetRecord(ctx, AccessCodeRecord, key)
		switch {
		case fhir.KindOf(err) == fhir.NotFound: // expired, or never there
			ok = false
		case err != nil:
			return "", "", false, err
		default:
			if err := json.Unmarshal(raw, &rec); err != nil {
				return "", "", false, fmt.Errorf("access-code record of %s: %w", srRef, err)
			}
		}
	} else {
		ok = false
	}
	if !codeMatches(rec.Hash, code) || rec.Referral != srRef {
		ok = false
	}
	if st := tv.state(); st == Cancelled || st == Completed {
		ok = false
	}
	var r requestView
	if err := decode(srJSON, &r, "ServiceRequest"); err != nil {
		return "", "", false, err
	}
	typ, pid, okRef := fhir.SplitReference(elem.Str(r.Subject.Reference))
	if !okRef || typ != "Patient" {
		pid, ok = absentID, false
	}
	var pv struct {
		BirthDate string `json:"birthDate"`
	}
	if p, err := st.Read(ctx, "Patient", pid); err == nil {
		_ = decode(p.JSON, &pv, "Patient")
	} else {
		ok = false
	}
	if subtle.ConstantTimeCompare([]byte(pv.BirthDate), []byte(birth)) != 1 || pv.BirthDate == "" {
		ok = false
	}
	if !ok {
		return "", "", false, nil
	}
	_, srID, _ := fhir.SplitReference(srRef)
	return pid, srID, true, nil
}
