package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSubscriptionNotificationsSurviveSIGKILL: notifications queued while
// the receiver is down are in the outbox when signpost is killed; after a
// restart each is delivered, in order, none lost.
func TestSubscriptionNotificationsSurviveSIGKILL(t *testing.T) {
	began := time.Now()
	bin := buildSignpost(t)
	t.Logf("built in %v", time.Since(began))
	data := t.TempDir()
	var (
		mu   sync.Mutex
		down = true
		seen = map[string]bool{} // control ids: a resend after the kill is one notification
		got  []map[string]string
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if id := r.Header.Get("X-Signpost-Notification"); seen[id] {
			return
		} else {
			seen[id] = true
		}
		got = append(got, statusParams(t, body))
	}))
	defer rcv.Close()

	flags := []string{"--open", "--subscription-allow", "127.0.0.1,http"}
	p := startSignpost(t, bin, data, flags...)
	base := p.base + "/fhir"
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(33 * time.Hour)
	put := func(path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest("PUT", base+"/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		return mustDo(t, req, http.StatusCreated, http.StatusOK)
	}
	post := func(path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		return mustDo(t, req, http.StatusCreated)
	}
	put("Patient/p1", `{"resourceType":"Patient","id":"p1"}`)
	put("HealthcareService/hs1", `{"resourceType":"HealthcareService","id":"hs1","name":"Clinic"}`)
	put("Schedule/sc1", `{"resourceType":"Schedule","id":"sc1","active":true,"actor":[{"reference":"HealthcareService/hs1"}]}`)
	const n = 5
	for i := range n {
		st := start.Add(time.Duration(i) * 15 * time.Minute)
		put(fmt.Sprintf("Slot/s%d", i), fmt.Sprintf(`{"resourceType":"Slot","id":"s%d","schedule":{"reference":"Schedule/sc1"},"status":"free","start":%q,"end":%q}`,
			i, st.Format(time.RFC3339), st.Add(15*time.Minute).Format(time.RFC3339)))
	}
	post("Subscription", `{"resourceType":"Subscription","status":"requested","reason":"crash test",
		"criteria":"https://signpost.example/fhir/SubscriptionTopic/appointment-booked",
		"channel":{"type":"rest-hook","endpoint":"`+rcv.URL+`/hook","payload":"application/fhir+json",
		"_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"id-only"}]}}}`)
	var appts []string
	for i := range n {
		b := post("Appointment", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/s%d"}],`+
			`"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]}`, i))
		var a struct{ ID string }
		_ = json.Unmarshal(b, &a)
		appts = append(appts, a.ID)
	}
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 10*time.Second)
	mu.Lock()
	if len(got) != 0 {
		t.Fatalf("the receiver was down but took %d notifications", len(got))
	}
	down = false
	mu.Unlock()

	restarted := time.Now()
	startSignpost(t, bin, data, flags...)
	defer func() { t.Logf("all delivered %v after the restart", time.Since(restarted)) }()
	// A notification claimed at the moment of the kill waits for its lease.
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k >= n+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d notifications arrived", k, n+1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0]["type"] != "handshake" {
		t.Errorf("first notification %v, want the handshake", got[0])
	}
	for i, st := range got[1:] {
		if st["event-number"] != fmt.Sprint(i+1) || !strings.HasSuffix(st["focus"], "/Appointment/"+appts[i]) {
			t.Errorf("notification %d: %v, want event %d on Appointment/%s", i+1, st, i+1, appts[i])
		}
	}
}

func mustDo(t *testing.T, req *http.Request, want ...int) []byte {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, w := range want {
		if resp.StatusCode == w {
			return b
		}
	}
	t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, b)
	return nil
}

// statusParams reads a notification's status: type, and its first event's
// event-number and focus.
func statusParams(t *testing.T, body []byte) map[string]string {
	var b struct {
		Entry []struct {
			Resource struct {
				Parameter []struct {
					Name      string
					ValueCode string
					Part      []struct {
						Name           string
						ValueString    string
						ValueReference struct{ Reference string }
					}
				}
			}
		}
	}
	out := map[string]string{}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Entry) == 0 {
		t.Errorf("not a notification: %s", body)
		return out
	}
	for _, p := range b.Entry[0].Resource.Parameter {
		if p.Name == "type" {
			out["type"] = p.ValueCode
		}
		if p.Name == "notification-event" {
			for _, part := range p.Part {
				out[part.Name] = part.ValueString + part.ValueReference.Reference
			}
		}
	}
	return out
}

// TestSubscriptionAllowFlag reads --subscription-allow.
func TestSubscriptionAllowFlag(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		http     bool
		bad      bool
	}{
		{"", "[]", false, false},
		{"127.0.0.1,http", "[127.0.0.1/32]", true, false},
		{"10.1.2.7/24, ::1", "[10.1.2.0/24 ::1/128]", false, false},
		{"10.1.2.0/33", "", false, true},
		{"localhost", "", false, true},
	} {
		c, err := subscriptionFlag(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v, want one: %v", tc.in, err, tc.bad)
			continue
		}
		if tc.bad {
			continue
		}
		if got := fmt.Sprint(c.Allow); got != tc.want || c.AllowHTTP != tc.http {
			t.Errorf("%q: %s http=%v, want %s http=%v", tc.in, got, c.AllowHTTP, tc.want, tc.http)
		}
	}
}
