package reminder

import (
	"slices"
	"testing"
	"time"
)

// Choose: the patient's ranked contact points first, the deployment's
// order of channels for ties, the webhook after every contact point;
// old and ended contact points and opted-out channels skipped.
func TestChoose(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	email := func(v string, rank int) ContactPoint { return ContactPoint{System: "email", Value: v, Rank: rank} }
	mob := func(v string, rank int) ContactPoint {
		return ContactPoint{System: "phone", Use: "mobile", Value: v, Rank: rank}
	}
	all := []Channel{SMS, Email, Webhook}
	tests := []struct {
		name     string
		telecom  []ContactPoint
		enabled  []Channel
		out      []Channel
		want     Choice
		wantCode string
	}{
		{"deployment order breaks a tie", []ContactPoint{email("a@x.org", 0), mob("07700", 0)}, all, nil, Choice{Channel: SMS, To: "07700"}, ""},
		{"rank wins", []ContactPoint{mob("07700", 2), email("a@x.org", 1)}, all, nil, Choice{Channel: Email, To: "a@x.org"}, ""},
		{"ranked before unranked", []ContactPoint{mob("07700", 0), email("a@x.org", 3)}, all, nil, Choice{Channel: Email, To: "a@x.org"}, ""},
		{"lowest rank within a channel", []ContactPoint{email("b@x.org", 2), email("a@x.org", 1)}, all, nil, Choice{Channel: Email, To: "a@x.org"}, ""},
		{"sms system", []ContactPoint{{System: "sms", Value: "07711"}}, all, nil, Choice{Channel: SMS, To: "07711"}, ""},
		{"a landline is no SMS", []ContactPoint{{System: "phone", Use: "home", Value: "0113"}}, []Channel{SMS, Email}, nil, Choice{}, "recipient-unavailable"},
		{"old skipped", []ContactPoint{{System: "email", Use: "old", Value: "old@x.org"}, mob("07700", 0)}, []Channel{Email, SMS}, nil, Choice{Channel: SMS, To: "07700"}, ""},
		{"ended skipped", []ContactPoint{{System: "email", Value: "e@x.org", Period: &period{End: "2026-12-05"}}}, []Channel{Email}, nil, Choice{}, "recipient-unavailable"},
		{"not yet ended", []ContactPoint{{System: "email", Value: "e@x.org", Period: &period{End: "2026-12-06"}}}, []Channel{Email}, nil, Choice{Channel: Email, To: "e@x.org"}, ""},
		{"webhook after contact points", []ContactPoint{mob("07700", 0)}, []Channel{Webhook, SMS}, nil, Choice{Channel: SMS, To: "07700"}, ""},
		{"webhook without contact points", nil, all, nil, Choice{Channel: Webhook}, ""},
		{"channel not enabled", []ContactPoint{email("a@x.org", 0)}, []Channel{SMS}, nil, Choice{}, "recipient-unavailable"},
		{"opted out of one", []ContactPoint{mob("07700", 1), email("a@x.org", 2)}, all, []Channel{SMS}, Choice{Channel: Email, To: "a@x.org"}, ""},
		{"opted out of all usable", []ContactPoint{mob("07700", 1)}, []Channel{SMS, Email}, []Channel{SMS}, Choice{}, "patient-objection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Choose(tt.telecom, tt.enabled, func(ch Channel) bool { return slices.Contains(tt.out, ch) }, now)
			if got.Channel != tt.want.Channel || got.To != tt.want.To || got.Reason.code != tt.wantCode {
				t.Errorf("got %+v, want %+v with reason %q", got, tt.want, tt.wantCode)
			}
		})
	}
}

// due: the shortest lead whose time has come; none before the longest
// lead or once the appointment started.
func TestDue(t *testing.T) {
	s := &Service{cfg: Config{Leads: []time.Duration{24 * time.Hour, 168 * time.Hour}}}
	start := time.Date(2026, 12, 20, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		before time.Duration
		want   time.Duration
		ok     bool
	}{
		{200 * time.Hour, 0, false}, {168 * time.Hour, 168 * time.Hour, true}, {100 * time.Hour, 168 * time.Hour, true},
		{24 * time.Hour, 24 * time.Hour, true}, {time.Minute, 24 * time.Hour, true}, {0, 0, false}, {-time.Hour, 0, false},
	} {
		got, ok := s.due(start, start.Add(-tt.before))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%v before: got %v %v, want %v %v", tt.before, got, ok, tt.want, tt.ok)
		}
	}
}
