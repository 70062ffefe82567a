package adapters

// The operator view: system operations for the operator role (and nobody
// else) to see how the adapter instances are doing and to repair what
// failed to be delivered.
//
//	GET  $adapters                          every instance: state, detail, backlog, last error
//	GET  $adapter-dead-letters?adapter=&limit=  the dead letters, oldest first
//	POST $adapter-replay      {id}           a dead letter back to pending, delivered again
//	POST $adapter-discard     {id, reason}   a dead letter given up; its key flows again
//
// The answers are Parameters; the errors OperationOutcomes (a missing or
// malformed parameter 400 naming it, an unknown message 404, a message
// that is not a dead letter 409). The API audits every call, as it audits
// every operation. No answer carries a message's payload: it holds
// patient data, and the operator role reaches none.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// The operator view's operation names.
const (
	OpStatus      = "adapters"
	OpDeadLetters = "adapter-dead-letters"
	OpReplay      = "adapter-replay"
	OpDiscard     = "adapter-discard"
)

// The dead letters listed at most, and by default.
const (
	MaxDeadLetters     = 1000
	DefaultDeadLetters = 100
)

// operatorRoles may call the operator view's operations.
var operatorRoles = []string{string(auth.RoleOperator)}

// operatorOps are the operator view's operations over s.
func (s *Set) operatorOps() []*operation.Operation {
	op := func(name string, affects bool, h func(context.Context, *operation.Parameters) (*operation.Parameters, error)) *operation.Operation {
		return &operation.Operation{Name: name, Affects: affects, Roles: operatorRoles, Definition: conformance.OperationDefinition(name),
			Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
				if err := operatorOnly(ctx, name); err != nil {
					return nil, err
				}
				out, err := h(ctx, req.Params)
				if err != nil {
					return nil, err
				}
				return &operation.Result{Body: out.Encode()}, nil
			}}
	}
	return []*operation.Operation{
		op(OpStatus, false, s.statusOp),
		op(OpDeadLetters, false, s.deadLettersOp),
		op(OpReplay, true, s.replayOp),
		op(OpDiscard, true, s.discardOp),
	}
}

// operatorOnly refuses every caller but the operator role. The API's
// operation.Operation.Roles lets backend services (no role, system-level
// scopes) in too; the operator view is for people who run the deployment,
// whose role says so. A server without authorisation (tests) has no
// caller to refuse.
func operatorOnly(ctx context.Context, name string) error {
	p, ok := auth.FromContext(ctx)
	if !ok || write.IsServer(ctx) || p.Role == auth.RoleOperator {
		return nil
	}
	return fhir.Errorf(fhir.Forbidden, "forbidden", "", "$%s is for the operator role only", name)
}

// statusOp is $adapters: every instance's status with its backlog, and
// the outbox destinations with messages but no instance (one removed from
// the configuration), as "adapter" parts.
func (s *Set) statusOp(ctx context.Context, _ *operation.Parameters) (*operation.Parameters, error) {
	now := s.now()
	backlog := map[string]store.Backlog{}
	if s.admin != nil {
		bs, err := s.admin.Backlog(ctx, now)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			backlog[b.Destination] = b
		}
	}
	out := &operation.Parameters{}
	statuses := s.Status(ctx)
	for _, st := range statuses {
		b, ok := backlog[st.Name]
		if !ok {
			b = store.Backlog{Destination: st.Name}
		}
		delete(backlog, st.Name)
		out.Parameter = append(out.Parameter, statusPart(st, b, now))
	}
	var orphans []string
	for d := range backlog {
		orphans = append(orphans, d)
	}
	slices.Sort(orphans)
	for _, d := range orphans {
		st := Status{Name: d, State: StateStopped,
			Detail: "not in the configuration: its messages wait for an instance of this name, or to be discarded"}
		out.Parameter = append(out.Parameter, statusPart(st, backlog[d], now))
	}
	out.Parameter = append(out.Parameter, param("retention", "string", time.Duration(s.retention).String()))
	return out, nil
}

// statusPart is one instance's "adapter" part.
func statusPart(st Status, b store.Backlog, now time.Time) operation.Parameter {
	parts := []operation.Parameter{param("name", "string", st.Name)}
	if st.Kind != "" {
		parts = append(parts, param("kind", "string", st.Kind))
	}
	parts = append(parts, param("state", "code", string(st.State)))
	if st.Detail != "" {
		parts = append(parts, param("detail", "string", st.Detail))
	}
	if st.LastError != "" {
		parts = append(parts, param("lastError", "string", st.LastError))
	}
	if !st.LastErrorAt.IsZero() {
		parts = append(parts, param("lastErrorAt", "instant", instant(st.LastErrorAt)))
	}
	bl := []operation.Parameter{param("pending", "integer", b.Pending), param("inFlight", "integer", b.InFlight),
		param("dead", "integer", b.Dead)}
	if !b.OldestPending.IsZero() {
		age := max(now.Sub(b.OldestPending), 0)
		bl = append(bl, param("oldestPending", "instant", instant(b.OldestPending)),
			param("oldestPendingAge", "Quantity", map[string]any{"value": int64(age / time.Second), "unit": "s",
				"system": "http://unitsofmeasure.org", "code": "s"}))
	}
	parts = append(parts, operation.Parameter{Name: "backlog", Part: bl})
	return operation.Parameter{Name: "adapter", Part: parts}
}

// deadLettersOp is $adapter-dead-letters: the dead letters, oldest first,
// of one adapter (input adapter) or all, at most limit (default
// DefaultDeadLetters, at most MaxDeadLetters), as "deadLetter" parts.
func (s *Set) deadLettersOp(ctx context.Context, in *operation.Parameters) (*operation.Parameters, error) {
	if err := onlyInputs(in, "adapter", "limit"); err != nil {
		return nil, err
	}
	admin, err := s.outbox()
	if err != nil {
		return nil, err
	}
	adapter, _ := in.String("adapter")
	limit := DefaultDeadLetters
	if raw, ok := in.String("limit"); ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxDeadLetters {
			return nil, fhir.Errorf(fhir.Invalid, "value", "limit", "limit must be a whole number from 1 to %d, not %q", MaxDeadLetters, raw)
		}
		limit = n
	}
	dead, err := admin.DeadLetters(ctx, adapter, limit)
	if err != nil {
		return nil, err
	}
	out := &operation.Parameters{}
	for _, q := range dead {
		parts := []operation.Parameter{
			param("id", "id", strconv.FormatInt(q.ID, 10)),
			param("adapter", "string", q.Destination),
			param("key", "string", q.Key),
			param("controlId", "string", q.ControlID),
			param("contentType", "code", q.ContentType),
			param("created", "instant", instant(q.Created)),
			param("attempts", "integer", q.Attempts),
			param("size", "integer", len(q.Payload)),
		}
		if !q.Finished.IsZero() {
			parts = append(parts, param("deadSince", "instant", instant(q.Finished)))
		}
		if q.LastError != "" {
			parts = append(parts, param("reason", "string", q.LastError))
		}
		out.Parameter = append(out.Parameter, operation.Parameter{Name: "deadLetter", Part: parts})
	}
	return out, nil
}

// replayOp is $adapter-replay: dead letter id back to pending, due now,
// its attempts reset and its control id kept; the instances are woken.
func (s *Set) replayOp(ctx context.Context, in *operation.Parameters) (*operation.Parameters, error) {
	if err := onlyInputs(in, "id"); err != nil {
		return nil, err
	}
	admin, err := s.outbox()
	if err != nil {
		return nil, err
	}
	id, err := messageID(in)
	if err != nil {
		return nil, err
	}
	if err := admin.Replay(ctx, id, s.now()); err != nil {
		return nil, err
	}
	s.wake()
	return &operation.Parameters{Parameter: []operation.Parameter{
		param("id", "id", strconv.FormatInt(id, 10)), param("state", "code", string(store.OutboxPending))}}, nil
}

// discardOp is $adapter-discard: dead letter id given up with the reason
// (recorded with who gave it up); its key's later messages flow again.
func (s *Set) discardOp(ctx context.Context, in *operation.Parameters) (*operation.Parameters, error) {
	if err := onlyInputs(in, "id", "reason"); err != nil {
		return nil, err
	}
	admin, err := s.outbox()
	if err != nil {
		return nil, err
	}
	id, err := messageID(in)
	if err != nil {
		return nil, err
	}
	reason, _ := in.String("reason")
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "no reason given"
	}
	who := "the server"
	if p, ok := auth.FromContext(ctx); ok && !write.IsServer(ctx) {
		who = p.ClientID
		if p.Subject != "" && p.Subject != p.ClientID {
			who = p.Subject + " (" + p.ClientID + ")"
		}
	}
	if err := admin.Discard(ctx, id, fmt.Sprintf("discarded by %s: %s", who, reason), s.now()); err != nil {
		return nil, err
	}
	s.wake()
	return &operation.Parameters{Parameter: []operation.Parameter{
		param("id", "id", strconv.FormatInt(id, 10)), param("state", "code", string(store.OutboxDiscarded))}}, nil
}

// outbox is the store's OutboxAdmin, or the error of a store without one.
func (s *Set) outbox() (store.OutboxAdmin, error) {
	if s.admin == nil {
		return nil, fhir.Errorf(fhir.NotSupported, "not-supported", "", "the store keeps no outbox, so there are no dead letters")
	}
	return s.admin, nil
}

// wake tells every instance with a dispatcher to look at the outbox now.
func (s *Set) wake() {
	for _, n := range s.names {
		if w, ok := s.instances[n].(Waker); ok {
			w.Wake()
		}
	}
}

// messageID reads the required id input: an outbox message's id.
func messageID(in *operation.Parameters) (int64, error) {
	raw, ok := in.String("id")
	if !ok || strings.TrimSpace(raw) == "" {
		return 0, fhir.Errorf(fhir.Invalid, "required", "id", "the parameter id (the dead letter's id, from $%s) is required", OpDeadLetters)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || id < 1 {
		return 0, fhir.Errorf(fhir.Invalid, "value", "id", "id must be a dead letter's id, a positive whole number, not %q", raw)
	}
	return id, nil
}

// onlyInputs refuses an input not in names (a misspelt parameter would
// otherwise be ignored).
func onlyInputs(in *operation.Parameters, names ...string) error {
	for _, p := range in.Parameter {
		if !slices.Contains(names, p.Name) {
			return fhir.Errorf(fhir.Invalid, "not-supported", p.Name, "unknown parameter %q; this operation takes %s", p.Name, strings.Join(names, ", "))
		}
	}
	return nil
}

// param is a parameter of FHIR type typ (its value[x] suffix, such as
// "string" or "integer") with value v.
func param(name, typ string, v any) operation.Parameter {
	raw, _ := json.Marshal(v)
	suffix := strings.ToUpper(typ[:1]) + typ[1:]
	return operation.Parameter{Name: name, ValueType: suffix, Value: raw}
}

// instant renders t as a FHIR instant.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
