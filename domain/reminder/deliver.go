package reminder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// ErrWithdrawn is Begin's answer for a reminder that must not be sent (any
// more): it was withdrawn or sent already, its appointment was cancelled,
// moved or has started, or the patient opted out of its channel since it
// was queued. The sender drops its message.
var ErrWithdrawn = errors.New("reminder: withdrawn; nothing to send")

// Delivery is a reminder a channel is about to send.
type Delivery struct {
	Message
	// Resource is the Communication as it stands (in-progress): the
	// webhook posts its JSON.
	Resource *fhir.Resource
	// Subject is a short title (an e-mail's Subject).
	Subject string
	// Text is the message (the Communication's payload).
	Text string
}

// Begin checks, at send time, that the reminder of the outbox message
// payload is still to be sent, and marks it in-progress. One not-done
// because its channel refused it (system-error) is sent again: its dead
// letter was replayed. A reminder that is not to be sent (its status is
// otherwise no longer preparation or in-progress, its
// appointment is no longer booked for the start it was made for or has
// started, or the patient opted out of its channel) gives ErrWithdrawn,
// and is made not-done with the reason if it was pending.
func (s *Service) Begin(ctx context.Context, payload []byte) (*Delivery, error) {
	ctx = write.AsServer(ctx)
	var m Message
	if err := json.Unmarshal(payload, &m); err != nil || m.Communication == "" {
		return nil, fmt.Errorf("reminder: the outbox message is not a reminder: %s", payload)
	}
	var d *Delivery
	withdrawn := false
	err := s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		d, withdrawn = nil, false
		cur, err := tx.Read(ctx, "Communication", m.Communication)
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			withdrawn = true
			return nil
		} else if err != nil {
			return err
		}
		c, err := decode[communication](cur.JSON)
		if err != nil {
			return err
		}
		replay := c.failedToSend()
		if c.Status != "preparation" && c.Status != "in-progress" && !replay {
			withdrawn = true
			return nil
		}
		reason, ok, err := s.stillDue(ctx, tx, cur.JSON, c)
		if err != nil {
			return err
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return err
		}
		if !ok {
			withdrawn = true
			setNotDone(obj, reason)
			_, _, err := tx.Put(ctx, "Communication", cur.ID, obj, cur.Version)
			return err
		}
		res := cur
		if c.Status != "in-progress" {
			obj.Set("status", "in-progress")
			obj.Delete("statusReason") // a replay: the failure stays in the note and the history
			if res, _, err = tx.Put(ctx, "Communication", cur.ID, obj, cur.Version); err != nil {
				return err
			}
		}
		text := ""
		if len(c.Payload) > 0 {
			text = c.Payload[0].ContentString
		}
		d = &Delivery{Message: m, Resource: res, Subject: "Appointment reminder", Text: text}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if withdrawn {
		return nil, ErrWithdrawn
	}
	return d, nil
}

// stillDue reports whether the reminder c (JSON b), pending, is still to
// be sent, and if not why.
func (s *Service) stillDue(ctx context.Context, tx *write.Tx, b []byte, c *communication) (notDoneReason, bool, error) {
	id, start, ok := parseKey(reminderKey(b))
	if !ok {
		return reasonCancelled, false, nil
	}
	cur, err := tx.Read(ctx, "Appointment", id)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return reasonCancelled, false, nil
	} else if err != nil {
		return notDoneReason{}, false, err
	}
	a, err := decode[appointment](cur.JSON)
	if err != nil {
		return notDoneReason{}, false, err
	}
	now := s.cfg.Now()
	at, ok := a.start()
	switch {
	case a.Status != "booked":
		return reasonCancelled, false, nil
	case !ok || !at.Equal(start):
		return reasonMoved, false, nil
	case !at.After(now):
		return reasonPast, false, nil
	}
	if len(c.Recipient) > 0 {
		if _, pid, ok := fhir.SplitReference(c.Recipient[0].Reference); ok {
			out, err := s.OptOuts(ctx, tx, pid, now)
			if err != nil {
				return notDoneReason{}, false, err
			}
			var m struct {
				Medium []concept `json:"medium"`
			}
			_ = json.Unmarshal(b, &m)
			for _, cc := range m.Medium {
				for _, cd := range cc.Coding {
					if cd.System == ChannelSystem && out.Covers(Channel(cd.Code)) {
						return reasonOptedOut, false, nil
					}
				}
			}
		}
	}
	return notDoneReason{}, true, nil
}

// Sent records that d went out at the service's now: the Communication
// becomes completed with its sent time, unless it changed since Begin
// (withdrawn while it was being sent), which is then left as it is.
func (s *Service) Sent(ctx context.Context, d *Delivery) error {
	return s.finish(ctx, d, func(obj *fhir.Object) {
		obj.Set("status", "completed")
		obj.Set("sent", s.cfg.Now().UTC().Format(time.RFC3339Nano))
	})
}

// Failed records that d's channel refused it for good (or gave up): the
// Communication becomes not-done with reason system-error and the
// channel's words in a note.
func (s *Service) Failed(ctx context.Context, d *Delivery, why string) error {
	return s.finish(ctx, d, func(obj *fhir.Object) {
		setNotDone(obj, reasonFailed)
		obj.Set("note", []any{map[string]any{"text": why, "time": s.cfg.Now().UTC().Format(time.RFC3339Nano)}})
	})
}

// finish applies f to d's Communication if it is still in-progress.
func (s *Service) finish(ctx context.Context, d *Delivery, f func(*fhir.Object)) error {
	return s.repo.Update(write.AsServer(ctx), func(ctx context.Context, tx *write.Tx) error {
		cur, err := tx.Read(ctx, "Communication", d.Communication)
		if err != nil {
			return err
		}
		c, err := decode[communication](cur.JSON)
		if err != nil {
			return err
		}
		if c.Status != "in-progress" {
			s.cfg.Logger.Warn("reminder: the reminder changed while it was sent; left as it is",
				"communication", d.Communication, "status", c.Status)
			return nil
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return err
		}
		f(obj)
		_, _, err = tx.Put(ctx, "Communication", cur.ID, obj, cur.Version)
		return err
	})
}
