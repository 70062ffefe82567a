package mongo_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/256dpi/lungo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/mongo"
)

// sharedScheme opens, for "mongotest-shared:NAME", a store on the
// deployment registered under NAME: several servers of one test on one
// deployment, as several Signpost processes would be.
const sharedScheme = "mongotest-shared"

var shared = struct {
	sync.Mutex
	clients map[string]lungo.IClient
}{clients: map[string]lungo.IClient{}}

func init() {
	store.Register(sharedScheme, func(ctx context.Context, cfg store.Config) (store.Store, error) {
		name := strings.TrimPrefix(cfg.URI, sharedScheme+":")
		shared.Lock()
		client := shared.clients[name]
		shared.Unlock()
		if client == nil {
			return nil, fmt.Errorf("no shared deployment %q", name)
		}
		return mongo.New(ctx, client, name, nil)
	})
}

// twoServers starts two Signpost servers on one deployment (a lungo
// engine, or SIGNPOST_TEST_MONGODB_URI's in a database of the test's own)
// and returns their base URLs.
func twoServers(t *testing.T) [2]string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("signpost_servers_%d_%d", os.Getpid(), dbSeq.Add(1))
	var client lungo.IClient
	if uri := os.Getenv(envURI); uri != "" {
		c, err := lungo.Connect(ctx, options.Client().ApplyURI(uri))
		if err != nil {
			t.Fatal(err)
		}
		client = c
		t.Cleanup(func() {
			_ = c.Database(name).Drop(ctx)
			_ = c.Disconnect(ctx)
		})
	} else {
		c, engine, err := lungo.Open(ctx, lungo.Options{Store: lungo.NewMemoryStore()})
		if err != nil {
			t.Fatal(err)
		}
		client = c
		t.Cleanup(engine.Close)
	}
	shared.Lock()
	shared.clients[name] = client
	shared.Unlock()
	var bases [2]string
	for i := range bases {
		_, ts := apptest.New(t, app.Config{Store: sharedScheme + ":" + name})
		bases[i] = ts.URL + "/fhir"
	}
	return bases
}

func do(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// raceHTTP sends n requests at once, alternating between the servers, and
// counts the statuses.
func raceHTTP(t *testing.T, bases [2]string, n int, send func(base string) int) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	counts := map[int]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := send(bases[i%2])
			mu.Lock()
			counts[st]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

func total(t *testing.T, base, search string) string {
	t.Helper()
	st, body := do(t, "GET", base+"/"+search+"&_total=accurate&_summary=count", "")
	if st != 200 {
		t.Fatalf("%s: %d %s", search, st, body)
	}
	i := strings.Index(body, `"total":`)
	if i < 0 {
		t.Fatalf("%s: no total in %s", search, body)
	}
	return strings.TrimRight(strings.SplitN(body[i+8:], ",", 2)[0], "}")
}

// TestTwoServersRaceForOneSlot: two servers on one deployment, 16 clients
// booking one slot through either: one booking, one busy slot.
func TestTwoServersRaceForOneSlot(t *testing.T) {
	bases := twoServers(t)
	seedOneSlot(t, bases[0])
	appt := `{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/only"}],` +
		`"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]}`
	got := raceHTTP(t, bases, 16, func(base string) int { st, _ := do(t, "POST", base+"/Appointment", appt); return st })
	if got[201] != 1 || got[409] != 15 {
		t.Errorf("statuses %v, want one 201 and 15 × 409", got)
	}
	if n := total(t, bases[1], "Appointment?slot=Slot/only"); n != "1" {
		t.Errorf("%s appointments of the slot, want 1", n)
	}
	if n := total(t, bases[1], "Slot?_id=only&status=busy"); n != "1" {
		t.Errorf("the slot is busy in %s searches, want 1", n)
	}
}

// TestTwoServersShareProposals: a $find proposal one server signs, the
// other books: the proposal key is the store's, not a process's
// (store.SharedSecret), as is the UBRN issuer's signing key.
func TestTwoServersShareProposals(t *testing.T) {
	bases := twoServers(t)
	start := seedOneSlot(t, bases[0])
	day := start.Format("2006-01-02")
	st, body := do(t, "GET", bases[0]+"/Appointment/$find?healthcare-service=HealthcareService/hs&patient-reference=Patient/p1&start="+day+"&end="+day, "")
	i := strings.Index(body, `"resourceType":"Appointment","id":"`)
	if st != 200 || i < 0 {
		t.Fatalf("$find on the first server: %d %s", st, body)
	}
	id := strings.SplitN(body[i+len(`"resourceType":"Appointment","id":"`):], `"`, 2)[0]
	book := `{"resourceType":"Parameters","parameter":[{"name":"appointment-reference","valueReference":{"reference":"Appointment/` + id + `"}}]}`
	if st, body := do(t, "POST", bases[1]+"/Appointment/$book", book); st != 200 {
		t.Fatalf("$book on the second server of the first's proposal: %d %s", st, body)
	}
	if n := total(t, bases[0], "Slot?_id=only&status=busy"); n != "1" {
		t.Errorf("the slot is busy in %s searches, want 1", n)
	}
}

// seedOneSlot gives a service, its schedule, a patient and one free slot
// tomorrow (Slot/only), whose start it returns.
func seedOneSlot(t *testing.T, base string) time.Time {
	t.Helper()
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(33 * time.Hour)
	for _, r := range []struct{ path, body string }{
		{"HealthcareService/hs", `{"resourceType":"HealthcareService","id":"hs","name":"Clinic"}`},
		{"Schedule/sc", `{"resourceType":"Schedule","id":"sc","active":true,"actor":[{"reference":"HealthcareService/hs"}]}`},
		{"Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"One"}]}`},
		{"Slot/only", `{"resourceType":"Slot","id":"only","schedule":{"reference":"Schedule/sc"},"status":"free","start":"` +
			start.Format(time.RFC3339) + `","end":"` + start.Add(15*time.Minute).Format(time.RFC3339) + `"}`},
	} {
		if st, body := do(t, "PUT", base+"/"+r.path, r.body); st != 201 {
			t.Fatalf("PUT %s: %d %s", r.path, st, body)
		}
	}
	return start
}

// TestTwoServersRaceConditionalCreate: conditional creates of one
// Patient through two servers make one.
func TestTwoServersRaceConditionalCreate(t *testing.T) {
	bases := twoServers(t)
	body := `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`
	got := raceHTTP(t, bases, 16, func(base string) int {
		st, _ := do(t, "POST", base+"/Patient", body, "If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009")
		return st
	})
	if got[201] != 1 || got[200] != 15 {
		t.Errorf("statuses %v, want one 201 and 15 × 200", got)
	}
	if n := total(t, bases[0], "Patient?identifier=9000000009"); n != "1" {
		t.Errorf("%s patients, want 1", n)
	}
}
