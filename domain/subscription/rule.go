package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// by is the PutOptions.By of the Service's own writes of a Subscription
// (its status): the rule lets them through as they are.
const by = "subscription"

// rule is the "subscription" write rule: a Subscription written by a
// client is checked and completed; every change is noted for matching
// once the transaction's writes are done (BeforeCommit).
func (s *Service) rule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.Type == "Subscription" {
		// The live subscriptions change: forget them now, and again once
		// the transaction has ended (lists read in between may be stale).
		s.forgetLive()
		tx.AfterEnd(func(bool) { s.forgetLive() })
		if c.By == by || c.New == nil {
			return nil
		}
		return s.checkSubscription(ctx, tx, c)
	}
	changes := tx.Local(changesKey{}, func() any {
		cs := &changeSet{old: map[string]*fhir.Resource{}}
		tx.BeforeCommit(func(ctx context.Context) error { return s.match(ctx, tx, cs) })
		return cs
	}).(*changeSet)
	ref := c.Type + "/" + c.ID
	if _, seen := changes.old[ref]; !seen {
		changes.old[ref] = c.Old
		changes.order = append(changes.order, ref)
	}
	return nil
}

type changesKey struct{}

// changeSet is what a transaction changed: each resource's version before
// it, in the order first written.
type changeSet struct {
	order []string
	old   map[string]*fhir.Resource
}

// checkSubscription validates a client's Subscription and sets its
// server-owned elements: every problem is reported at once (422), each
// with its location.
func (s *Service) checkSubscription(ctx context.Context, tx *write.Tx, c *write.Change) error {
	x, err := parse(c.ID, c.New.Bytes())
	if err != nil {
		return err
	}
	now := tx.Now()
	var issues []fhir.Issue
	bad := func(loc, format string, args ...any) {
		issues = append(issues, fhir.Issue{Code: "value", Expression: []string{loc}, Diagnostics: fmt.Sprintf(format, args...)})
	}
	var raw rawSub
	_ = json.Unmarshal(c.New.Bytes(), &raw)
	if raw.Channel.Type != "rest-hook" {
		bad("Subscription.channel.type", "channel type %q is not supported: Signpost delivers over rest-hook only", raw.Channel.Type)
	}
	if x.Endpoint == "" {
		bad("Subscription.channel.endpoint", "a rest-hook subscription needs an endpoint")
	} else if err := s.cfg.Addresses.CheckURL(x.Endpoint); err != nil {
		bad("Subscription.channel.endpoint", "%v", err)
	}
	if x.Payload != "" && x.Payload != "application/fhir+json" && x.Payload != "application/json" {
		bad("Subscription.channel.payload", "payload %q is not supported: use application/fhir+json", x.Payload)
	}
	switch x.Content {
	case "empty", "id-only", "full-resource":
	default:
		bad("Subscription.channel.payload.extension('"+ExtPayloadContent+"')", "payload content %q must be empty, id-only or full-resource", x.Content)
	}
	if x.Content != "empty" && x.Payload == "" {
		bad("Subscription.channel.payload", "payload content %s needs a payload type (application/fhir+json)", x.Content)
	}
	for i, h := range x.Headers {
		name, _, ok := cutHeader(h)
		if !ok {
			bad(fmt.Sprintf("Subscription.channel.header[%d]", i), "%q is not a header: Name: value", h)
		} else if reservedHeader(name) {
			bad(fmt.Sprintf("Subscription.channel.header[%d]", i), "header %s is set by Signpost", name)
		}
	}
	if x.Heartbeat != 0 && x.Heartbeat < s.cfg.MinHeartbeat {
		bad("Subscription.channel.extension('"+ExtHeartbeatPeriod+"')", "the heartbeat period must be at least %d seconds", int(s.cfg.MinHeartbeat/time.Second))
	}
	if x.Timeout > s.cfg.MaxTimeout {
		bad("Subscription.channel.extension('"+ExtTimeout+"')", "the timeout may be at most %d seconds", int(s.cfg.MaxTimeout/time.Second))
	}
	switch {
	case x.Criteria == "":
		bad("Subscription.criteria", "criteria is required: a topic's canonical URL or a search (Type?parameters)")
	case x.topic != nil:
		for i, f := range x.Filters {
			if _, err := s.parseSearch(f, fmt.Sprintf("Subscription.criteria.extension('%s')[%d]", ExtFilterCriteria, i), x.topic.Resource); err != nil {
				issues = append(issues, fhir.AsError(err).Issues...)
			}
		}
	case len(x.Criteria) > len(TopicBase) && x.Criteria[:len(TopicBase)] == TopicBase, isURL(x.Criteria):
		bad("Subscription.criteria", "%q is not a topic Signpost publishes (see %sSubscriptionTopic)", x.Criteria, s.cfg.BaseURL+"/")
	default:
		if len(x.Filters) > 0 {
			bad("Subscription.criteria", "filter criteria apply to a topic; an R4 criteria subscription carries its search in criteria")
		}
		if _, err := s.parseSearch(x.Criteria, "Subscription.criteria", ""); err != nil {
			issues = append(issues, fhir.AsError(err).Issues...)
		}
	}
	latest := now.Add(MaxLifetime)
	switch end := x.end(); {
	case x.End == "":
		c.New.Set("end", latest.UTC().Format(time.RFC3339))
	case end.IsZero():
		bad("Subscription.end", "%q is not an instant with a time zone", x.End)
	case end.After(latest.Add(time.Minute)):
		bad("Subscription.end", "a subscription may last at most %d days: end must be no later than %s (renew it by updating end)",
			int(MaxLifetime/(24*time.Hour)), latest.UTC().Format(time.RFC3339))
	}
	if len(issues) > 0 {
		return &fhir.Error{Kind: fhir.Unprocessable, Op: "write Subscription", Issues: issues}
	}

	// Server-owned: who it acts as, its status and error, its event count.
	var old *sub
	if c.Old != nil {
		if old, err = parse(c.ID, c.Old.JSON); err != nil {
			return err
		}
	}
	var exts []any
	if o := ownerOf(ctx); o != nil {
		exts = append(exts, o.extension())
	}
	if err := c.New.SetExtensions(ExtOwner, exts...); err != nil {
		return err
	}
	if err := c.New.SetExtensions(ExtEventCount); err != nil {
		return err
	}
	status, handshake := "requested", true
	switch {
	case x.Status == "off":
		status, handshake = "off", false
	case old != nil && (old.Status == "active" || old.Status == "requested") && old.Endpoint == x.Endpoint &&
		fmt.Sprint(old.Headers) == fmt.Sprint(x.Headers):
		status, handshake = old.Status, false // a renewal or a change of what it matches
	}
	c.New.Set("status", status)
	c.New.Delete("error")
	if status == "off" && old != nil && old.Error != "" {
		c.New.Set("error", old.Error)
	}
	if handshake {
		ob, err := storeOutbox(tx)
		if err != nil {
			return err
		}
		if err := enqueue(ctx, ob, Event{Subscription: c.ID, Type: Handshake, Timestamp: now}); err != nil {
			return err
		}
		tx.AfterCommit(func(context.Context) error { s.queued([]string{c.ID}); return nil })
	}
	return nil
}

func isURL(s string) bool {
	return len(s) > 8 && (s[:7] == "http://" || s[:8] == "https://")
}

// Event is one notification as it waits in the outbox: what happened, not
// yet the body, which the sender builds when it sends (Prepare), so that a
// full-resource notification carries only what the owner may read then.
type Event struct {
	Subscription string    `json:"subscription"` // the Subscription's id
	Type         string    `json:"type"`         // handshake, heartbeat or event-notification
	Number       int64     `json:"number,omitempty"`
	Timestamp    time.Time `json:"timestamp"`
	Focus        string    `json:"focus,omitempty"`   // "Type/id"
	Version      int64     `json:"version,omitempty"` // the focus's version the event made
	Created      bool      `json:"created,omitempty"` // the event created the focus
}

// enqueue queues ev for its subscription: one ordering key per
// subscription, so its notifications arrive in the order they happened
// (those of each focus resource, and the handshake first).
func enqueue(ctx context.Context, ob store.OutboxTx, ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = ob.Enqueue(ctx, store.Message{Destination: Destination, Key: "Subscription/" + ev.Subscription,
		ControlID: uuid.NewString(), ContentType: "application/json", Payload: b})
	return err
}

// live lists the subscriptions that may be notified (requested, active or
// error; notifications to a requested one wait behind its handshake).
func (s *Service) live(ctx context.Context, rd store.Reader) ([]*sub, error) {
	q := &search.Query{Type: "Subscription", Count: 1000}
	pq, err := s.reg.Parse("Subscription", map[string][]string{"status": {"requested,active,error"}, "_count": {"1000"}}, search.ParseOptions{})
	if err == nil {
		q = pq
	}
	var out []*sub
	for {
		page, err := rd.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Resources {
			if x, err := parse(r.ID, r.JSON); err == nil && x.Status != "off" {
				out = append(out, x)
			}
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// liveTTL bounds how long a list of the live subscriptions is reused:
// this process forgets it at each Subscription write; another process
// sharing the store is heard of within liveTTL.
const liveTTL = 2 * time.Second

// liveCache is the live subscriptions as last read, so that a write
// (every write is matched) does not search the Subscriptions each time.
type liveCache struct {
	mu   sync.Mutex
	gen  uint64 // bumped by forgetLive: a list read before is not kept
	subs []*sub
	at   time.Time
	ok   bool
}

// liveCached returns the live subscriptions, from the cache when it is
// fresh.
func (s *Service) liveCached(ctx context.Context, rd store.Reader) ([]*sub, error) {
	c := &s.cache
	c.mu.Lock()
	if c.ok && s.cfg.Now().Sub(c.at) < liveTTL {
		subs := c.subs
		c.mu.Unlock()
		return subs, nil
	}
	gen := c.gen
	c.mu.Unlock()
	at := s.cfg.Now()
	subs, err := s.live(ctx, rd)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.subs, c.at, c.ok = subs, at, true
	}
	c.mu.Unlock()
	return subs, nil
}

// forgetLive drops the cached list of live subscriptions.
func (s *Service) forgetLive() {
	s.cache.mu.Lock()
	s.cache.gen++
	s.cache.ok = false
	s.cache.mu.Unlock()
}

// match queues a notification event for each live subscription that one
// of the transaction's changes matches and whose owner may read it.
func (s *Service) match(ctx context.Context, tx *write.Tx, cs *changeSet) error {
	subs, err := s.liveCached(ctx, tx)
	if err != nil || len(subs) == 0 {
		return err
	}
	ob, err := storeOutbox(tx)
	if err != nil {
		return err
	}
	now := tx.Now()
	var notified []string
	for _, ref := range cs.order {
		typ, id, _ := fhir.SplitReference(ref)
		cur, err := tx.Read(ctx, typ, id)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			continue // deleted: nothing to match or send
		} else if err != nil {
			return err
		}
		old := cs.old[ref]
		var oldJSON []byte
		if old != nil {
			oldJSON = old.JSON
		}
		for _, x := range subs {
			if x.focusType() != typ || (!x.end().IsZero() && !now.Before(x.end())) {
				continue
			}
			ok, err := s.matches(ctx, tx, x, cur, oldJSON)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := s.writes.ReadAs(x.Owner.context(), tx, typ, id); fhir.KindOf(err) == fhir.NotFound {
				continue // the owner may not read it: it does not hear of it
			} else if err != nil {
				return err
			}
			n, err := s.nextEvent(ctx, tx, x.ID)
			if err != nil {
				return err
			}
			if err := enqueue(ctx, ob, Event{Subscription: x.ID, Type: EventNotification, Number: n, Timestamp: now,
				Focus: ref, Version: cur.Version, Created: old == nil}); err != nil {
				return err
			}
			notified = append(notified, x.ID)
		}
	}
	if len(notified) > 0 {
		tx.AfterCommit(func(context.Context) error { s.queued(notified); return nil })
	}
	return nil
}

// matches reports whether cur (with old, its version before the
// transaction) is an event of x: the topic's trigger and every filter on
// the focus type, or the R4 criteria, evaluated by the search engine on
// the resource as the transaction leaves it.
func (s *Service) matches(ctx context.Context, tx *write.Tx, x *sub, cur *fhir.Resource, old []byte) (bool, error) {
	var searches []string
	if x.topic != nil {
		if !x.topic.Trigger(old, cur.JSON) {
			return false, nil
		}
		searches = x.Filters
	} else {
		searches = []string{x.Criteria}
	}
	for _, expr := range searches {
		q, err := s.parseSearch(expr, "Subscription.criteria", cur.Type)
		if err != nil {
			return false, nil // written before a registry change that no longer parses it: matches nothing
		}
		q.Filter = append(q.Filter, search.IDIn{IDs: []string{cur.ID}})
		q.Count, q.Cursor, q.Sort, q.Include, q.RevInclude = 1, "", nil, nil, nil
		page, err := tx.Search(ctx, q)
		if err != nil {
			return false, err
		}
		if len(page.Resources) == 0 {
			return false, nil
		}
	}
	return true, nil
}

// nextEvent numbers the subscription's next event: its count of events,
// kept beside it (a derived value, so no new version of it), plus one.
func (s *Service) nextEvent(ctx context.Context, tx *write.Tx, id string) (int64, error) {
	n, err := eventCount(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	n++
	v, _ := json.Marshal(map[string]string{"url": ExtEventCount, "valueString": strconv.FormatInt(n, 10)})
	if err := tx.PutDerived(ctx, "Subscription", id, store.DerivedValue{Name: ExtEventCount, Value: v}); err != nil {
		return 0, err
	}
	return n, nil
}

// eventCount returns the number of events subscription id has had.
func eventCount(ctx context.Context, rd store.Reader, id string) (int64, error) {
	d, ok := rd.(store.Deriver)
	if !ok {
		return 0, errors.New("subscription: the store keeps no derived values: events cannot be numbered")
	}
	vals, err := d.Derived(ctx, "Subscription", []string{id})
	if err != nil {
		return 0, err
	}
	for _, v := range vals[id] {
		if v.Name == ExtEventCount {
			var e struct{ ValueString string }
			if json.Unmarshal(v.Value, &e) == nil {
				n, _ := strconv.ParseInt(e.ValueString, 10, 64)
				return n, nil
			}
		}
	}
	return 0, nil
}
