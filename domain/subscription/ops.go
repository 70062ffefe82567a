package subscription

import (
	"context"
	"encoding/json"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// Operations returns $status, on a Subscription and on the type.
func (s *Service) Operations() []*operation.Operation {
	return []*operation.Operation{{Name: "status", Types: []string{"Subscription"}, Instance: true, TypeLevel: true,
		Definition: conformance.OperationDefinition("Subscription-status"), Handle: s.statusOp,
		AccessFor: func(p *operation.Parameters) string { return "read" }}}
}

// statusOp answers $status: a searchset Bundle of the status (type
// query-status) of the subscription invoked on, or, on the type, of those
// the caller may read (the id and status inputs narrow them).
func (s *Service) statusOp(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	st := s.writes.Store()
	var ids []string
	if req.ID != "" {
		ids = []string{req.ID}
	} else {
		for _, p := range req.Params.Parameter {
			if p.Name == "id" {
				var v string
				if json.Unmarshal(p.Value, &v) == nil {
					ids = append(ids, v)
				}
			}
		}
	}
	var statuses []string
	for _, p := range req.Params.Parameter {
		if p.Name == "status" {
			var v string
			if json.Unmarshal(p.Value, &v) == nil {
				statuses = append(statuses, v)
			}
		}
	}
	if len(ids) == 0 {
		page, err := st.Search(ctx, mustQuery(s, "Subscription"))
		if err != nil {
			return nil, err
		}
		for _, r := range page.Resources {
			ids = append(ids, r.ID)
		}
	}
	type bentry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   map[string]any  `json:"search"`
	}
	var entries []bentry
	for _, id := range ids {
		res, err := s.writes.ReadAs(ctx, st, "Subscription", id)
		if err != nil {
			if req.ID != "" {
				return nil, err
			}
			continue // not the caller's to see
		}
		x, err := parse(res.ID, res.JSON)
		if err != nil {
			return nil, err
		}
		if len(statuses) > 0 && !contains(statuses, x.Status) {
			continue
		}
		n, err := eventCount(ctx, st, id)
		if err != nil {
			return nil, err
		}
		entries = append(entries, bentry{FullURL: "urn:uuid:" + id, Resource: s.status(x, QueryStatus, n, nil),
			Search: map[string]any{"mode": "match"}})
	}
	if entries == nil {
		entries = []bentry{}
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(entries),
		"timestamp": s.cfg.Now().UTC().Format(time.RFC3339Nano), "entry": entries})
	if err != nil {
		return nil, err
	}
	return &operation.Result{Body: b}, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func mustQuery(s *Service, typ string) *search.Query {
	q, _ := s.reg.Parse(typ, map[string][]string{"_count": {"1000"}}, search.ParseOptions{MaxCount: 1000})
	return q
}

// Run sends heartbeats and ends subscriptions past their end until ctx
// ends, looking every tick (default 1s).
func (s *Service) Run(ctx context.Context, tick time.Duration) {
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("subscription: heartbeats", "error", err)
		}
	}
}

// Tick queues a heartbeat for each active subscription with a heartbeat
// period that has had no notification queued for that long, and turns
// off those past their end.
func (s *Service) Tick(ctx context.Context) error {
	subs, err := s.live(ctx, s.writes.Store())
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	var due []string
	s.mu.Lock()
	seen := map[string]bool{}
	for _, x := range subs {
		seen[x.ID] = true
		if end := x.end(); !end.IsZero() && !now.Before(end) {
			continue
		}
		last, seen := s.activity[x.ID]
		if !seen {
			s.activity[x.ID] = now // after a start: one period from now
			continue
		}
		if x.Status == "active" && x.Heartbeat > 0 && now.Sub(last) >= x.Heartbeat {
			due = append(due, x.ID)
		}
	}
	for id := range s.activity {
		if !seen[id] {
			delete(s.activity, id) // off, ended or deleted
		}
	}
	s.mu.Unlock()
	for _, x := range subs {
		if end := x.end(); !end.IsZero() && !now.Before(end) {
			s.turnOff(ctx, x.ID, "the subscription ended at "+x.End)
		}
	}
	if len(due) == 0 {
		return nil
	}
	err = s.writes.Update(write.AsServer(ctx), func(ctx context.Context, tx *write.Tx) error {
		ob, err := storeOutbox(tx)
		if err != nil {
			return err
		}
		for _, id := range due {
			if err := enqueue(ctx, ob, Event{Subscription: id, Type: Heartbeat, Timestamp: tx.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.queued(due)
	return nil
}
