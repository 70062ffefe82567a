package subscription

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// Delivery is a notification ready to send, or the reason it is not to be
// sent (Drop): the subscription was deleted, turned off, ended, or its
// owner's client was removed.
type Delivery struct {
	Endpoint string
	Header   http.Header // the subscription's channel.header
	Body     []byte      // the notification Bundle
	Timeout  time.Duration
	Drop     string
}

// Prepare builds the notification for an outbox message's payload (an
// Event) as it is about to be sent: from the subscription as it is now,
// and, for a full-resource payload, the focus resource only if the
// subscription's owner may read it now.
func (s *Service) Prepare(ctx context.Context, payload []byte) (*Delivery, error) {
	var ev Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return &Delivery{Drop: fmt.Sprintf("unreadable notification: %v", err)}, nil
	}
	st := s.writes.Store()
	res, err := st.Read(ctx, "Subscription", ev.Subscription)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return &Delivery{Drop: "the subscription was deleted"}, nil
	} else if err != nil {
		return nil, err
	}
	x, err := parse(res.ID, res.JSON)
	if err != nil {
		return &Delivery{Drop: err.Error()}, nil
	}
	if x.Status == "off" {
		return &Delivery{Drop: "the subscription is off"}, nil
	}
	if end := x.end(); !end.IsZero() && !s.cfg.Now().Before(end) {
		s.turnOff(ctx, x.ID, fmt.Sprintf("the subscription ended at %s", x.End))
		return &Delivery{Drop: "the subscription ended"}, nil
	}
	if x.Owner != nil && !x.Owner.Server && s.cfg.ClientKnown != nil && !s.cfg.ClientKnown(x.Owner.Issuer, x.Owner.Client) {
		s.turnOff(ctx, x.ID, fmt.Sprintf("the client %s that owns the subscription was removed", x.Owner.Client))
		return &Delivery{Drop: "the owner's client was removed"}, nil
	}
	count, err := eventCount(ctx, st, x.ID)
	if err != nil {
		return nil, err
	}
	body, err := s.bundle(ctx, x, ev, count)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, line := range x.Headers {
		if name, value, ok := cutHeader(line); ok && !reservedHeader(name) {
			h.Add(name, value)
		}
	}
	timeout := x.Timeout
	if timeout == 0 || timeout > s.cfg.MaxTimeout {
		timeout = s.cfg.MaxTimeout
	}
	return &Delivery{Endpoint: x.Endpoint, Header: h, Body: body, Timeout: timeout}, nil
}

// cutHeader splits "Name: value".
func cutHeader(line string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(line, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
		return "", "", false
	}
	return http.CanonicalHeaderKey(name), strings.TrimSpace(value), true
}

// reservedHeader reports whether Signpost sets the header itself.
func reservedHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection":
		return true
	}
	return strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Signpost-")
}

type param struct {
	Name                 string          `json:"name"`
	ValueString          string          `json:"valueString,omitempty"`
	ValueCode            string          `json:"valueCode,omitempty"`
	ValueCanonical       string          `json:"valueCanonical,omitempty"`
	ValueInstant         string          `json:"valueInstant,omitempty"`
	ValueReference       *ref            `json:"valueReference,omitempty"`
	ValueCodeableConcept *concept        `json:"valueCodeableConcept,omitempty"`
	Part                 []param         `json:"part,omitempty"`
	Resource             json.RawMessage `json:"resource,omitempty"`
}

type concept struct {
	Text string `json:"text"`
}

type ref struct {
	Reference string `json:"reference"`
}

// status is the IG's R4 subscription status (a Parameters resource) for x,
// of notification type typ, with its events so far and the events given.
func (s *Service) status(x *sub, typ string, count int64, events []param) json.RawMessage {
	ps := []param{{Name: "subscription", ValueReference: &ref{s.cfg.BaseURL + "/Subscription/" + x.ID}}}
	if x.topic != nil {
		ps = append(ps, param{Name: "topic", ValueCanonical: x.topic.URL})
	}
	ps = append(ps, param{Name: "status", ValueCode: x.Status}, param{Name: "type", ValueCode: typ},
		param{Name: "events-since-subscription-start", ValueString: strconv.FormatInt(count, 10)})
	ps = append(ps, events...)
	if x.Error != "" {
		ps = append(ps, param{Name: "error", ValueCodeableConcept: &concept{Text: x.Error}})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "id": uuid.NewString(),
		"meta": map[string]any{"profile": []string{ProfileStatus}}, "parameter": ps})
	return b
}

type entry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  map[string]any  `json:"request"`
	Response map[string]any  `json:"response"`
}

// bundle builds the notification Bundle (type history) for ev: first the
// status, then, for an event whose focus the payload names and the owner
// may read now, the focus (its id, or itself for full-resource).
func (s *Service) bundle(ctx context.Context, x *sub, ev Event, count int64) ([]byte, error) {
	if ev.Type == EventNotification {
		count = ev.Number
	}
	var events []param
	var entries []entry
	if ev.Type == EventNotification {
		ne := param{Name: "notification-event", Part: []param{
			{Name: "event-number", ValueString: strconv.FormatInt(ev.Number, 10)},
			{Name: "timestamp", ValueInstant: ev.Timestamp.UTC().Format(time.RFC3339Nano)}}}
		if x.Content != "empty" && ev.Focus != "" {
			e, ok, err := s.focus(ctx, x, ev)
			if err != nil {
				return nil, err
			}
			if ok {
				ne.Part = append(ne.Part, param{Name: "focus", ValueReference: &ref{e.FullURL}})
				entries = append(entries, e)
			}
		}
		events = append(events, ne)
	}
	first := entry{FullURL: "urn:uuid:" + uuid.NewString(), Resource: s.status(x, ev.Type, count, events),
		Request:  map[string]any{"method": "GET", "url": s.cfg.BaseURL + "/Subscription/" + x.ID + "/$status"},
		Response: map[string]any{"status": "200"}}
	b := map[string]any{"resourceType": "Bundle", "id": uuid.NewString(),
		"meta": map[string]any{"profile": []string{ProfileNotification}}, "type": "history",
		"timestamp": s.cfg.Now().UTC().Format(time.RFC3339Nano), "entry": append([]entry{first}, entries...)}
	return json.Marshal(b)
}

// focus returns the Bundle entry of ev's focus for x, and false when x's
// owner may not read the resource now (then nothing of it is sent, not
// even its id).
func (s *Service) focus(ctx context.Context, x *sub, ev Event) (entry, bool, error) {
	typ, id, _ := fhir.SplitReference(ev.Focus)
	st := s.writes.Store()
	if _, err := s.writes.ReadAs(x.Owner.context(), st, typ, id); err != nil {
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return entry{}, false, nil
		}
		return entry{}, false, err
	}
	e := entry{FullURL: s.cfg.BaseURL + "/" + ev.Focus,
		Request:  map[string]any{"method": "PUT", "url": ev.Focus},
		Response: map[string]any{"status": "200"}}
	if ev.Created {
		e.Request = map[string]any{"method": "POST", "url": typ}
		e.Response = map[string]any{"status": "201"}
	}
	if x.Content == "full-resource" {
		res, err := st.ReadVersion(ctx, typ, id, ev.Version)
		if err != nil {
			if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
				return entry{}, false, nil
			}
			return entry{}, false, err
		}
		if err := store.AddDerived(ctx, st, []*fhir.Resource{res}); err != nil {
			return entry{}, false, err
		}
		e.Resource = res.JSON
		e.Response["etag"] = res.ETag()
		e.Response["lastModified"] = res.LastUpdated.UTC().Format(time.RFC3339Nano)
	}
	return e, true, nil
}

// Delivered records that a notification of subscription id reached its
// endpoint: a requested (handshake done) or failing subscription becomes
// active.
func (s *Service) Delivered(ctx context.Context, payload []byte) {
	var ev Event
	if json.Unmarshal(payload, &ev) != nil {
		return
	}
	s.setStatus(ctx, ev.Subscription, func(x *sub) (string, string, bool) {
		if x.Status == "requested" || x.Status == "error" {
			return "active", "", true
		}
		return "", "", false
	})
}

// Failed records that a notification could not be delivered (reason): the
// subscription is in error until one is.
func (s *Service) Failed(ctx context.Context, payload []byte, reason string) {
	var ev Event
	if json.Unmarshal(payload, &ev) != nil {
		return
	}
	s.setStatus(ctx, ev.Subscription, func(x *sub) (string, string, bool) {
		if x.Status == "off" || (x.Status == "error" && x.Error == reason) {
			return "", "", false
		}
		return "error", reason, true
	})
}

// turnOff stops a subscription, saying why.
func (s *Service) turnOff(ctx context.Context, id, reason string) {
	s.setStatus(ctx, id, func(x *sub) (string, string, bool) {
		if x.Status == "off" {
			return "", "", false
		}
		return "off", reason, true
	})
}

// setStatus writes, as the server, the status and error that decide
// returns for the subscription as it is now (when it says to).
func (s *Service) setStatus(ctx context.Context, id string, decide func(x *sub) (status, reason string, change bool)) {
	err := s.writes.Update(write.AsServer(ctx), func(ctx context.Context, tx *write.Tx) error {
		res, err := tx.Read(ctx, "Subscription", id)
		if err != nil {
			return err
		}
		x, err := parse(id, res.JSON)
		if err != nil {
			return err
		}
		status, reason, change := decide(x)
		if !change {
			return nil
		}
		obj, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return err
		}
		obj.Set("status", status)
		if reason != "" {
			obj.Set("error", reason)
		} else {
			obj.Delete("error")
		}
		_, _, err = tx.PutWith(ctx, "Subscription", id, obj, res.Version, write.PutOptions{By: by})
		return err
	})
	if err != nil && fhir.KindOf(err) != fhir.NotFound && fhir.KindOf(err) != fhir.Gone {
		s.cfg.Logger.Warn("subscription: recording its status", "subscription", id, "error", err)
	}
}
