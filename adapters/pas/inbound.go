package pas

// Inbound: the messages the PAS sends to the instance's listener.
//
// Each message is parsed and its header checked (a message that cannot be
// read or routed is rejected, AR), looked up in the store's inbox by its
// sender (the instance, MSH-3 and MSH-4) and control id (MSH-10), and
// applied through the domain's write path as the instance's principal,
// the inbox record (with the acknowledgement) written in the same
// transaction. So:
//
//   - a resend (same sender, control id and content) is answered with the
//     acknowledgement recorded the first time, and applied once; two copies
//     arriving together race to record, the loser's transaction rolls back
//     and it answers with the winner's acknowledgement;
//   - a control id reused for other content is rejected (AR), and nothing
//     is recorded for it;
//   - a message that cannot be applied changes nothing: AR when it never
//     can be as sent (malformed, unsupported, missing what it needs, for a
//     schedule the PAS does not own, refused by the organisation rules),
//     AE when it may be later (an unknown patient or appointment, a slot
//     already taken, a no-show before the appointment ended);
//   - AR answers are recorded in the inbox (in a transaction of their own,
//     the application's having rolled back), so a resend of a rejected
//     message is rejected again with the same answer even if the state
//     that rejected it has changed; AE answers are not, so a resend after
//     the cause is fixed (the patient registered, the slot freed) applies.
//     A message whose header cannot be read or checked (no control id to
//     record it by, an unsupported version) is answered and not recorded,
//     nor is a reused control id (the first message holds the record).
//
// Acknowledgement modes: in original mode (MSH-15 and MSH-16 empty) every
// message gets AA, AE or AR. In enhanced mode the message is applied
// before it is acknowledged, so the accept acknowledgement (CA, CE, CR)
// is sent when MSH-15 asks for it and itself says the message was
// applied; when MSH-15 asks for none but MSH-16 asks for an application
// acknowledgement, AA, AE or AR is sent on the connection instead; when
// neither asks, nothing is sent. No separate application acknowledgement
// is initiated to the PAS.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// An applier applies one kind of message inside the write transaction and
// returns the text for MSA-3 (usually ""), or a *refusal or a domain
// error.
type applier func(ctx context.Context, tx *write.Tx, m *hl7v2.Message) (string, error)

// appliers are the messages the adapter applies, by MSH-9.1 and MSH-9.2.
func (a *Adapter) appliers() map[string]map[string]applier {
	return map[string]map[string]applier{
		"SIU": {"S12": a.siuBooked, "S13": a.siuRescheduled, "S14": a.siuModified,
			"S15": a.siuCancelled, "S17": a.siuDeleted, "S26": a.siuNoShow},
		"ADT": {"A04": a.adtRegister, "A28": a.adtRegister, "A08": a.adtUpdate, "A31": a.adtUpdate,
			"A40": a.adtMerge},
	}
}

// receive is the listener's Handler: it applies one message from the PAS
// and returns its acknowledgement (nil when the sender asked for none).
// It returns no error: every message is answered, a malformed one with AR.
func (a *Adapter) receive(ctx context.Context, _ netip.Addr, raw []byte) ([]byte, error) {
	msg, err := hl7v2.Parse(raw)
	if err != nil {
		return a.unreadable(raw, err), nil
	}
	if err := msg.CheckHeader(); err != nil {
		return a.ack(msg, refusalOf(err, hl7v2.OutcomeReject)), nil
	}
	in := store.Inbound{
		Sender:    a.env.Name + "|" + msg.Raw("MSH-3") + "|" + msg.Raw("MSH-4"),
		ControlID: msg.ControlID(),
		Payload:   raw,
		Received:  a.env.Now(),
	}
	sum := sha256.Sum256(msg.Encode()) // the content, whatever its segment endings
	in.Hash = sum[:]
	inbox := a.store.(store.Inbox) // New refuses a listener without one
	prev, err := inbox.Received(ctx, in.Sender, in.ControlID)
	switch {
	case err == nil:
		return a.resent(msg, prev, in.Hash), nil
	case fhir.KindOf(err) != fhir.NotFound:
		a.failed(fmt.Sprintf("reading the inbox: %v", err))
		return a.ack(msg, failure("", hl7v2.CodeInternal, "the message could not be checked against those received; send it again")), nil
	}
	return a.apply(ctx, msg, in), nil
}

// resent answers a message already recorded: with the recorded answer
// when its content is the same, else with AR (its control id was reused).
func (a *Adapter) resent(msg *hl7v2.Message, prev *store.Inbound, hash []byte) []byte {
	if bytes.Equal(prev.Hash, hash) {
		return prev.Answer
	}
	return a.ack(msg, reject("MSH-10", hl7v2.CodeDuplicateKey,
		"control id %q reused: a different message with this control id was received at %s", msg.ControlID(), prev.Received.UTC().Format("2006-01-02T15:04:05Z")))
}

// errRecorded wraps the fhir.Conflict RecordReceived gives when another
// copy of the message was recorded first.
type errRecorded struct{ err error }

func (e errRecorded) Error() string { return e.err.Error() }

// apply applies msg in one write transaction with its inbox record, and
// returns the acknowledgement.
func (a *Adapter) apply(ctx context.Context, msg *hl7v2.Message, in store.Inbound) []byte {
	code, event := msg.Type()
	var fn applier
	var ref *refusal
	switch events, ok := a.appliers()[code]; {
	case !ok:
		ref = reject("MSH-9.1", hl7v2.CodeUnsupportedType, "message type %s is not handled (SIU and ADT are)", code)
	case events[event] == nil:
		ref = reject("MSH-9.2", hl7v2.CodeUnsupportedEvent, "%s^%s is not handled", code, event)
	default:
		fn = events[event]
		ref = checkEscapes(msg)
	}
	if ref == nil {
		var answer []byte
		err := a.env.Writes.Update(a.env.Context(ctx), func(ctx context.Context, tx *write.Tx) error {
			text, err := fn(ctx, tx, msg)
			if err != nil {
				return err
			}
			answer = a.ack(msg, &refusal{outcome: hl7v2.OutcomeAccept, text: text})
			rec := in
			rec.Answer = answer
			if err := tx.Tx.(store.InboxTx).RecordReceived(ctx, rec); err != nil {
				if fhir.KindOf(err) == fhir.Conflict {
					return errRecorded{err}
				}
				return err
			}
			return nil
		})
		if err == nil {
			return answer
		}
		if errors.As(err, new(errRecorded)) {
			return a.first(ctx, msg, in)
		}
		if u, ok := asUnmirrored(err); ok {
			if answer := a.blockTime(ctx, msg, in, u); answer != nil {
				return answer
			}
		}
		// A copy applied meanwhile may be why this one failed (its slot
		// taken by the copy): answer as that copy was answered.
		if prev, perr := a.store.(store.Inbox).Received(ctx, in.Sender, in.ControlID); perr == nil {
			return a.resent(msg, prev, in.Hash)
		}
		ref = refusalOf(err, hl7v2.OutcomeError)
	}
	answer := a.ack(msg, ref)
	if ref.outcome != hl7v2.OutcomeReject {
		return answer
	}
	rec := in
	rec.Answer = answer
	err := a.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.(store.InboxTx).RecordReceived(ctx, rec)
	})
	switch {
	case fhir.KindOf(err) == fhir.Conflict:
		return a.first(ctx, msg, in)
	case err != nil:
		a.failed(fmt.Sprintf("recording a rejected message: %v", err))
	}
	return answer
}

// first answers a copy of a message another copy of which was recorded
// while it was being applied: as that one was answered.
func (a *Adapter) first(ctx context.Context, msg *hl7v2.Message, in store.Inbound) []byte {
	prev, err := a.store.(store.Inbox).Received(ctx, in.Sender, in.ControlID)
	if err != nil {
		return a.ack(msg, failure("", hl7v2.CodeInternal, "the message was received twice at once and the first answer cannot be read; send it again"))
	}
	return a.resent(msg, prev, in.Hash)
}

// A refusal is the outcome of a message: accepted (with a note for
// MSA-3), or not applied, with the issue an ERR segment reports. It is an
// error, so an applier can return it.
type refusal struct {
	outcome hl7v2.Outcome
	text    string
	issue   *hl7v2.Issue
}

func (r *refusal) Error() string {
	if r.issue != nil {
		return r.issue.Error()
	}
	return r.text
}

// newRefusal builds a refusal with outcome o at path (as hl7v2 writes
// paths; "" for the message as a whole) with table 0357 code.
func newRefusal(o hl7v2.Outcome, path, code, format string, args ...any) *refusal {
	text := fmt.Sprintf(format, args...)
	is := &hl7v2.Issue{Code: code, Severity: hl7v2.SeverityError, Text: text}
	if path != "" {
		p, err := hl7v2.ParsePath(path)
		if err != nil {
			panic("pas: bad path literal " + path)
		}
		is.Location = p
	}
	return &refusal{outcome: o, text: text, issue: is}
}

// reject refuses a message that can never be applied as sent (AR).
func reject(path, code, format string, args ...any) *refusal {
	return newRefusal(hl7v2.OutcomeReject, path, code, format, args...)
}

// failure refuses a message that cannot be applied now (AE).
func failure(path, code, format string, args ...any) *refusal {
	return newRefusal(hl7v2.OutcomeError, path, code, format, args...)
}

// at gives a domain refusal of a write made for the message's field path
// its location, so ERR names the field that led to it.
func at(path string, err error) error {
	if err == nil {
		return nil
	}
	var r *refusal
	if errors.As(err, &r) {
		return err
	}
	r = refusalOf(err, hl7v2.OutcomeError)
	p, perr := hl7v2.ParsePath(path)
	if perr == nil && r.issue.Location.Segment == "" {
		r.issue.Location = p
	}
	return r
}

// refusalOf turns an error into a refusal: a *refusal or *hl7v2.Issue as
// it is (an Issue with outcome o), a domain error by its kind. A write the
// domain refuses for the state things are in (a slot taken, a rule of
// timing, something missing) may apply later: AE; one the organisation
// rules forbid or that is malformed never will: AR. Any other failure (the
// store) is AE, so the PAS sends the message again.
func refusalOf(err error, o hl7v2.Outcome) *refusal {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	var is *hl7v2.Issue
	if errors.As(err, &is) {
		return &refusal{outcome: o, text: is.Text, issue: is}
	}
	fe := fhir.AsError(err)
	text := fe.Error()
	if len(fe.Issues) > 0 && fe.Issues[0].Diagnostics != "" {
		var parts []string
		for _, i := range fe.Issues {
			parts = append(parts, i.Diagnostics)
		}
		text = strings.Join(parts, "; ")
	}
	switch fe.Kind {
	case fhir.Conflict, fhir.PreconditionFailed:
		return failure("", hl7v2.CodeRecordLocked, "%s", text)
	case fhir.NotFound, fhir.Gone:
		return failure("", hl7v2.CodeUnknownKey, "%s", text)
	case fhir.Unprocessable:
		return failure("", hl7v2.CodeInternal, "%s", text)
	case fhir.Forbidden, fhir.Unauthorized:
		return reject("", hl7v2.CodeInternal, "not allowed: %s", text)
	case fhir.Invalid:
		return reject("", hl7v2.CodeDataType, "%s", text)
	}
	return failure("", hl7v2.CodeInternal, "the message could not be applied now (%v); send it again", errors.Unwrap(fe))
}

// ack builds the acknowledgement of msg for r's outcome, as the
// acknowledgement mode asks (see the file comment); nil when none is
// wanted.
func (a *Adapter) ack(msg *hl7v2.Message, r *refusal) []byte {
	ack := hl7v2.Ack{Outcome: r.outcome, Text: r.text, Time: a.env.Now()}
	if r.issue != nil {
		ack.Issues = []*hl7v2.Issue{r.issue}
	}
	if msg.Enhanced() {
		switch {
		case msg.WantsAck(true, r.outcome):
			ack.Commit = true
		case msg.WantsAck(false, r.outcome):
		default:
			return nil
		}
	}
	m, err := hl7v2.BuildAck(msg, ack)
	if err != nil { // cannot happen for a parsed message; answer plainly all the same
		m, _ = hl7v2.BuildAck(fallbackHeader(nil), hl7v2.Ack{Outcome: hl7v2.OutcomeReject, Text: err.Error()})
	}
	return m.Encode()
}

// unreadable answers a message Parse refused with AR, addressed from what
// can be read of its first line.
func (a *Adapter) unreadable(raw []byte, err error) []byte {
	text := strings.TrimPrefix(err.Error(), hl7v2.ErrSyntax.Error()+": ")
	path, code := "", hl7v2.CodeSegmentSequence
	switch {
	case strings.Contains(text, "MSH-1"), strings.Contains(text, "MSH-2"):
		path, code = "MSH-2", hl7v2.CodeDataType
	case strings.Contains(text, "separators"):
		path, code = "MSH-1", hl7v2.CodeDataType
	}
	return a.ack(fallbackHeader(raw), reject(path, code, "the message cannot be read: %s", text))
}

// fallbackHeader builds, for acknowledging a message that does not parse,
// an MSH with the standard delimiters and what can be read of raw's first
// line: its sending and receiving application and facility, type, control
// id, processing id and version (first components only).
func fallbackHeader(raw []byte) *hl7v2.Message {
	m, _ := hl7v2.NewMessage(hl7v2.DefaultDelimiters)
	line := raw
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	if len(line) < 4 || !bytes.HasPrefix(line, []byte("MSH")) {
		return m
	}
	parts := bytes.Split(line[4:], line[3:4]) // parts[0] is MSH-2, parts[i] MSH-(i+2)
	comp := byte('^')
	if len(parts[0]) > 0 && parts[0][0] != '\\' {
		comp = parts[0][0]
	}
	field := func(n int) []string {
		if n-2 >= len(parts) {
			return nil
		}
		return strings.Split(string(parts[n-2]), string(comp))
	}
	clean := func(s string) string { // what Set would escape must not confuse the reader: keep it plain
		return strings.Map(func(r rune) rune {
			if r < ' ' || r > '~' || strings.ContainsRune(`|^~\&`, r) {
				return -1
			}
			return r
		}, s)
	}
	for _, n := range []int{3, 4, 5, 6, 10, 11, 12} {
		if f := field(n); len(f) > 0 && clean(f[0]) != "" {
			_ = m.Set(fmt.Sprintf("MSH-%d", n), clean(f[0]))
		}
	}
	if f := field(9); len(f) > 1 {
		_ = m.Set("MSH-9.1", clean(f[0]))
		_ = m.Set("MSH-9.2", clean(f[1]))
	}
	return m
}

// checkEscapes rejects a message with a malformed escape sequence in any
// field (one not closed, or not one HL7 defines): the codec keeps such
// text as it came, and applying it would store garbage.
func checkEscapes(m *hl7v2.Message) *refusal {
	esc := m.Delimiters.Escape
	seen := map[string]int{}
	for _, seg := range m.Segments {
		seen[seg.Name]++
		for fi, f := range seg.Fields {
			if seg.Name == "MSH" && fi < 2 {
				continue
			}
			for ri, rep := range f {
				for ci, comp := range rep {
					for si, s := range comp {
						if why := badEscape(s, esc); why != "" {
							p := hl7v2.Path{Segment: seg.Name, SegRep: seen[seg.Name], Field: fi + 1, Rep: ri + 1, Comp: ci + 1, Sub: si + 1}
							return &refusal{outcome: hl7v2.OutcomeReject, text: fmt.Sprintf("%s: %s", p, why),
								issue: &hl7v2.Issue{Location: p, Code: hl7v2.CodeDataType, Severity: hl7v2.SeverityError, Text: why}}
						}
					}
				}
			}
		}
	}
	return nil
}

// badEscape says what is wrong with the escape sequences of wire text s,
// or "" when nothing is. HL7 defines \F\ \S\ \T\ \R\ \E\, \Xhh…\, \H\ \N\,
// the formatting commands (\.br\ …) and the character set escapes \Cxxyy\
// \Mxxyyzz\, and leaves \Z…\ to local use.
func badEscape(s string, esc byte) string {
	for {
		i := strings.IndexByte(s, esc)
		if i < 0 {
			return ""
		}
		s = s[i+1:]
		j := strings.IndexByte(s, esc)
		if j < 0 {
			return fmt.Sprintf("escape sequence %q is not closed", string(esc)+clip(s))
		}
		seq := s[:j]
		s = s[j+1:]
		if !validEscape(seq) {
			return fmt.Sprintf("%q is not an HL7 escape sequence", string(esc)+seq+string(esc))
		}
	}
}

func validEscape(seq string) bool {
	if seq == "" {
		return false
	}
	hex := func(s string) bool { return s != "" && strings.Trim(s, "0123456789ABCDEFabcdef") == "" }
	switch seq[0] {
	case 'F', 'S', 'T', 'R', 'E', 'H', 'N':
		return len(seq) == 1
	case 'X':
		return len(seq)%2 == 1 && hex(seq[1:])
	case 'C':
		return len(seq) == 5 && hex(seq[1:])
	case 'M':
		return (len(seq) == 5 || len(seq) == 7) && hex(seq[1:])
	case 'Z':
		return true
	case '.':
		if len(seq) < 3 {
			return false
		}
		switch seq[1:3] {
		case "sp", "br", "fi", "nf", "in", "ti", "sk", "ce":
			return strings.Trim(strings.TrimLeft(seq[3:], "+-"), "0123456789") == ""
		}
	}
	return false
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}
