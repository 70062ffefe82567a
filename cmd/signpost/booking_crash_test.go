package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBookingSurvivesSIGKILL books (and cancels half of what it books)
// from 32 clients, kills the server with SIGKILL mid-stream, restarts it, and checks that every booking
// acknowledged with 201 is there and that `signpost check` finds nothing.
func TestBookingSurvivesSIGKILL(t *testing.T) {
	bin := buildSignpost(t)
	data := t.TempDir()
	p := startSignpost(t, bin, data, "--open")
	send := func(base, method, path string, body any) (int, []byte, error) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+"/fhir"+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, nil
	}
	seed := func(path string, body any) {
		if st, b, err := send(p.base, "PUT", path, body); err != nil || st >= 300 {
			t.Fatalf("PUT %s: %d %v %s", path, st, err, b)
		}
	}
	const slots = 300
	seed("/HealthcareService/hs", map[string]any{"resourceType": "HealthcareService", "id": "hs"})
	seed("/Schedule/sc", map[string]any{"resourceType": "Schedule", "id": "sc", "actor": []any{map[string]string{"reference": "HealthcareService/hs"}}})
	seed("/Patient/p1", map[string]any{"resourceType": "Patient", "id": "p1"})
	t0 := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	for i := range slots {
		st := t0.Add(time.Duration(i) * 10 * time.Minute)
		seed(fmt.Sprintf("/Slot/s%d", i), map[string]any{"resourceType": "Slot", "id": fmt.Sprintf("s%d", i), "schedule": map[string]string{"reference": "Schedule/sc"},
			"status": "free", "start": st.Format(time.RFC3339), "end": st.Add(10 * time.Minute).Format(time.RFC3339)})
	}

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := map[string]any{"resourceType": "Appointment", "status": "booked",
					"slot":        []any{map[string]string{"reference": fmt.Sprintf("Slot/s%d", rng.IntN(slots))}},
					"participant": []any{map[string]any{"actor": map[string]string{"reference": "Patient/p1"}, "status": "accepted"}}}
				st, b, err := send(p.base, "POST", "/Appointment", body)
				if err != nil {
					return // the server is gone
				}
				if st == http.StatusCreated {
					var a struct{ ID string }
					json.Unmarshal(b, &a)
					mu.Lock()
					acked = append(acked, a.ID)
					mu.Unlock()
					if rng.IntN(2) == 0 { // cancel half, so the stream goes on until the kill
						req, _ := http.NewRequest("PATCH", p.base+"/fhir/Appointment/"+a.ID, bytes.NewReader([]byte(
							`[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"crash test"}}]`)))
						req.Header.Set("Content-Type", "application/json-patch+json")
						if resp, err := http.DefaultClient.Do(req); err == nil {
							resp.Body.Close()
						}
					}
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	p.signal(t, syscall.SIGKILL)
	close(stop)
	wg.Wait()
	p.wait(t, 10*time.Second)
	if len(acked) == 0 {
		t.Fatal("no booking was acknowledged before the kill")
	}

	p = startSignpost(t, bin, data, "--open")
	for _, id := range acked {
		if st, b, err := send(p.base, "GET", "/Appointment/"+id, nil); err != nil || st != 200 {
			t.Errorf("acknowledged Appointment/%s after restart: %d %v %s", id, st, err, b)
		}
	}
	out, err := exec.Command(bin, "check", "--data", data).CombinedOutput()
	if err != nil {
		t.Errorf("signpost check after the crash: %v\n%s", err, out)
	}
	t.Logf("%d bookings acknowledged before SIGKILL; check: %s", len(acked), bytes.TrimSpace(out))
}
