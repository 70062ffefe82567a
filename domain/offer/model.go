package offer

import (
	"context"
	"encoding/json"
	"net/url"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// appointment is the part of an Appointment offers read.
type appointment struct {
	Status      string         `json:"status"`
	Start       string         `json:"start"`
	Slot        []r4.Reference `json:"slot"`
	BasedOn     []r4.Reference `json:"basedOn"`
	Participant []struct {
		Actor  *r4.Reference `json:"actor"`
		Status string        `json:"status"`
	} `json:"participant"`
	Extension []r4.Extension `json:"extension"`
}

// live reports whether the appointment holds its slots.
func (a *appointment) live() bool {
	switch a.Status {
	case "pending", "booked", "arrived", "checked-in", "fulfilled", "noshow":
		return true
	}
	return false
}

func (a *appointment) patient() string {
	for _, p := range a.Participant {
		if p.Actor != nil {
			if typ, id, ok := fhir.SplitReference(elem.Str(p.Actor.Reference)); ok && typ == "Patient" {
				return "Patient/" + id
			}
		}
	}
	return ""
}

func (a *appointment) referral() string {
	for _, b := range a.BasedOn {
		if typ, id, ok := fhir.SplitReference(elem.Str(b.Reference)); ok && typ == "ServiceRequest" {
			return "ServiceRequest/" + id
		}
	}
	return ""
}

func (a *appointment) start() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, a.Start)
	return t, err == nil
}

// offerOf returns the offer an appointment carries, or nil.
func (a *appointment) offerOf() *offerExt {
	for _, e := range elem.Extensions(a.Extension, Extension) {
		o := &offerExt{}
		for _, sub := range e.Extension {
			switch {
			case sub.Url == "referral" && sub.ValueReference != nil:
				o.Referral = elem.Str(sub.ValueReference.Reference)
			case sub.Url == "replaces" && sub.ValueReference != nil:
				o.Replaces = elem.Str(sub.ValueReference.Reference)
			case sub.Url == "request" && sub.ValueReference != nil:
				o.Request = elem.Str(sub.ValueReference.Reference)
			case sub.Url == "communication" && sub.ValueReference != nil:
				o.Communication = elem.Str(sub.ValueReference.Reference)
			case sub.Url == "slot-issue" && sub.ValueBoolean != nil:
				o.SlotIssue = *sub.ValueBoolean
			}
		}
		return o
	}
	return nil
}

// offerExt is the Extension an offer carries: what it was made for.
type offerExt struct {
	Referral      string // "ServiceRequest/id": the referral the slot suits
	Replaces      string // "Appointment/id": the booking it would replace (a request's)
	Request       string // "Task/id": the request it answers; "" for a slot issue
	Communication string // "Communication/id": its announcement
	SlotIssue     bool   // made to a referral on the slot-issues worklist
}

// extension renders o as the Extension.
func (o *offerExt) extension() r4.Extension {
	ext := r4.Extension{Url: Extension}
	add := func(name, ref string) {
		if ref != "" {
			ext.Extension = append(ext.Extension, r4.Extension{Url: name, ValueReference: &r4.Reference{Reference: elem.Opt(ref)}})
		}
	}
	add("referral", o.Referral)
	add("replaces", o.Replaces)
	add("request", o.Request)
	add("communication", o.Communication)
	if o.SlotIssue {
		t := true
		ext.Extension = append(ext.Extension, r4.Extension{Url: "slot-issue", ValueBoolean: &t})
	}
	return ext
}

// slot is the part of a Slot offers read.
type slot struct {
	Status   string       `json:"status"`
	Start    string       `json:"start"`
	End      string       `json:"end"`
	Schedule r4.Reference `json:"schedule"`
	Meta     struct {
		Tag []r4.Coding `json:"tag"`
	} `json:"meta"`
	ServiceType []json.RawMessage `json:"serviceType"`
	Specialty   []json.RawMessage `json:"specialty"`
}

// request is the part of a request Task offers read.
type request struct {
	Status      string             `json:"status"`
	Focus       r4.Reference       `json:"focus"`
	For         r4.Reference       `json:"for"`
	BasedOn     []r4.Reference     `json:"basedOn"`
	Code        r4.CodeableConcept `json:"code"`
	AuthoredOn  string             `json:"authoredOn"`
	Restriction *struct {
		Period *r4.Period `json:"period"`
	} `json:"restriction"`
}

func (r *request) isRequest() bool { return elem.HasCoding(r.Code, CodeSystem, TaskCode) }

func (r *request) active() bool { return r.Status == "requested" || r.Status == "in-progress" }

// referralView is the part of a ServiceRequest offers order by.
type referralView struct {
	Priority   string         `json:"priority"`
	AuthoredOn string         `json:"authoredOn"`
	Subject    r4.Reference   `json:"subject"`
	Extension  []r4.Extension `json:"extension"`
}

// rank is the referral's place in the order: 0 two-week-wait, 1 urgent
// (or asap, stat), 2 routine.
func (r *referralView) rank() int {
	for _, e := range elem.Extensions(r.Extension, referral.PriorityExtension) {
		if e.ValueCoding != nil && elem.Str(e.ValueCoding.Code) == "two-week-wait" {
			return 0
		}
	}
	switch r.Priority {
	case "urgent", "asap", "stat":
		return 1
	}
	return 2
}

func decode[T any](raw []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "", "cannot read the resource: %v", err)
	}
	return v, nil
}

// refID returns the id of a reference to a resource of typ.
func refID(ref, typ string) (string, bool) {
	t, id, ok := fhir.SplitReference(ref)
	return id, ok && t == typ && fhir.ValidID(id)
}

// searchAll returns every match of a search in r, following pages.
func (o *Service) searchAll(ctx context.Context, r store.Reader, typ string, params url.Values) ([]*fhir.Resource, error) {
	q, err := o.search.Parse(typ, params, search.ParseOptions{Strict: true, DefaultCount: 500, MaxCount: 1000})
	if err != nil {
		return nil, err
	}
	var out []*fhir.Resource
	for {
		page, err := r.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Resources...)
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// setExt replaces the extension of e.Url on obj with e.
func setExt(obj *fhir.Object, e r4.Extension) error { return obj.SetExtensions(e.Url, e) }
