package reminder

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Choice is the channel a reminder goes by and the address it goes to,
// or, with no Channel, why it goes nowhere.
type Choice struct {
	Channel Channel
	To      string // the contact point's value; "" for the webhook
	Reason  notDoneReason
}

// ContactPoint is a Patient.telecom entry, as Choose reads it.
type ContactPoint struct {
	System string  `json:"system"`
	Value  string  `json:"value"`
	Use    string  `json:"use"`
	Rank   int     `json:"rank"`
	Period *period `json:"period"`
}

// Choose picks the channel of a patient's reminder. A channel is usable
// when the deployment enables it, the patient has not opted out of it
// (OptOut) and, for e-mail and SMS, the patient has a current contact
// point for it in Patient.telecom: system email for e-mail; system sms,
// or phone with use mobile, for SMS; not use old, and its period not
// ended. The webhook needs no contact point. Among the usable channels
// the patient's preference wins: the channel of the contact point with
// the lowest rank (Patient.telecom.rank, 1 the most preferred; an entry
// without a rank comes after every ranked one, and the webhook after
// every contact point); ties go to the deployment's order of channels.
// Within a channel, the contact point with the lowest rank (then the
// first listed) is the address.
//
// With no usable channel the reminder is not sent: its reason is
// patient-objection when an opt-out removed a channel that was otherwise
// usable, else recipient-unavailable.
func Choose(telecom []ContactPoint, enabled []Channel, optedOut func(Channel) bool, now time.Time) Choice {
	type candidate struct {
		ch   Channel
		to   string
		rank int
	}
	best := map[Channel]candidate{}
	for _, cp := range telecom {
		if cp.Value == "" || cp.Use == "old" || (cp.Period != nil && ended(cp.Period.End, now)) {
			continue
		}
		var ch Channel
		switch {
		case cp.System == "email":
			ch = Email
		case cp.System == "sms", cp.System == "phone" && cp.Use == "mobile":
			ch = SMS
		default:
			continue
		}
		rank := math.MaxInt32
		if cp.Rank > 0 {
			rank = cp.Rank
		}
		if b, ok := best[ch]; !ok || rank < b.rank {
			best[ch] = candidate{ch, cp.Value, rank}
		}
	}
	best[Webhook] = candidate{Webhook, "", math.MaxInt}
	var usable []candidate
	objected := false
	for _, ch := range enabled {
		c, ok := best[ch]
		if !ok {
			continue
		}
		if optedOut(ch) {
			objected = true
			continue
		}
		usable = append(usable, c)
	}
	if len(usable) == 0 {
		if objected {
			return Choice{Reason: reasonOptedOut}
		}
		return Choice{Reason: reasonNoContact}
	}
	// Stable: equal ranks keep the deployment's order.
	slices.SortStableFunc(usable, func(a, b candidate) int {
		switch {
		case a.rank < b.rank:
			return -1
		case a.rank > b.rank:
			return 1
		}
		return 0
	})
	return Choice{Channel: usable[0].ch, To: usable[0].to}
}

// ended reports whether a FHIR dateTime end is before now.
func ended(end string, now time.Time) bool {
	if end == "" {
		return false
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, end); err == nil {
			if layout != time.RFC3339 { // a date ends at the end of its day, month or year
				switch layout {
				case "2006-01-02":
					t = t.AddDate(0, 0, 1)
				case "2006-01":
					t = t.AddDate(0, 1, 0)
				default:
					t = t.AddDate(1, 0, 0)
				}
			}
			return !t.After(now)
		}
	}
	return false
}

// choose reads Patient/patient's telecom and opt-outs in r and picks the
// reminder's channel (Choose).
func (s *Service) choose(ctx context.Context, r store.Reader, patient string, now time.Time) (Choice, error) {
	_, id, ok := fhir.SplitReference(patient)
	if !ok {
		return Choice{Reason: reasonNoContact}, nil
	}
	res, err := r.Read(ctx, "Patient", id)
	if fhir.KindOf(err) == fhir.NotFound || fhir.KindOf(err) == fhir.Gone {
		return Choice{Reason: reasonNoContact}, nil
	} else if err != nil {
		return Choice{}, err
	}
	var p struct {
		Telecom []ContactPoint `json:"telecom"`
	}
	if err := json.Unmarshal(res.JSON, &p); err != nil {
		return Choice{}, err
	}
	out, err := s.OptOuts(ctx, r, id, now)
	if err != nil {
		return Choice{}, err
	}
	return Choose(p.Telecom, s.cfg.Channels, out.Covers, now), nil
}

// OptOut is what a patient opted out of: every channel, or some.
//
// It is read from the patient's Consents: status active, category
// ConsentCategorySystem|appointment-reminders, provision.type deny, and
// provision.period (if any) covering now. A provision without codes
// covers every channel; one with codes of ChannelSystem (email, sms,
// webhook) covers those. Several such Consents add up. To opt back in,
// the patient (or the call centre) makes the Consent inactive or deletes
// it.
type OptOut struct {
	All      bool
	Channels []Channel
}

// Covers reports whether the opt-out covers ch.
func (o OptOut) Covers(ch Channel) bool { return o.All || slices.Contains(o.Channels, ch) }

// OptOuts returns what Patient/patientID opted out of at now, read in r.
func (s *Service) OptOuts(ctx context.Context, r store.Reader, patientID string, now time.Time) (OptOut, error) {
	var out OptOut
	q, err := s.search.Parse("Consent", url.Values{"patient": {"Patient/" + patientID}, "status": {"active"},
		"category": {ConsentCategorySystem + "|" + ConsentCategoryCode}, "_count": {"50"}}, search.ParseOptions{Strict: true})
	if err != nil {
		return out, err
	}
	for {
		page, err := r.Search(ctx, q)
		if err != nil {
			return out, err
		}
		for _, res := range page.Resources {
			var c struct {
				Provision *struct {
					Type   string    `json:"type"`
					Period *period   `json:"period"`
					Code   []concept `json:"code"`
				} `json:"provision"`
			}
			if json.Unmarshal(res.JSON, &c) != nil || c.Provision == nil || c.Provision.Type != "deny" {
				continue
			}
			if p := c.Provision.Period; p != nil {
				if ended(p.End, now) || (p.Start != "" && !startedAt(p.Start, now)) {
					continue
				}
			}
			if len(c.Provision.Code) == 0 {
				out.All = true
				continue
			}
			for _, cc := range c.Provision.Code {
				for _, cd := range cc.Coding {
					if cd.System == ChannelSystem && !slices.Contains(out.Channels, Channel(cd.Code)) {
						out.Channels = append(out.Channels, Channel(cd.Code))
					}
				}
			}
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// startedAt reports whether a FHIR dateTime start is at or before now.
func startedAt(start string, now time.Time) bool {
	for _, layout := range []string{time.RFC3339, "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, start); err == nil {
			return !t.After(now)
		}
	}
	return true
}
