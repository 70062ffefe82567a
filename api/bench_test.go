package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
)

// The benchmarks below drive the whole HTTP stack (gin, middleware,
// validation, index extraction, the group-commit SQLite store with fsync)
// over 127.0.0.1, from benchParallelism × GOMAXPROCS client goroutines, so
// that writes can share commits as they do under real load.
// BenchmarkBareGin is the ceiling for BenchmarkRead: a gin handler that
// serves the same bytes from memory over the same transport. Report reads as
// the ratio of the two ns/op figures from one run (docs/PERFORMANCE.md).
const benchParallelism = 8

// benchPatient is a realistic ~1 KB Patient.
func benchPatient(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile("testdata/bench/patient.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// benchClient keeps enough idle connections for every client goroutine.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
}

// benchDo sends one request and returns the ETag and the body; a status
// other than want is an error.
func benchDo(c *http.Client, method, url string, body []byte, ifMatch string, want int) (string, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != want {
		return "", nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, got)
	}
	return resp.Header.Get("ETag"), got, nil
}

// benchMust is benchDo for set-up, on the benchmark's own goroutine.
func benchMust(b *testing.B, c *http.Client, method, url string, body []byte, want int) (string, []byte) {
	b.Helper()
	etag, got, err := benchDo(c, method, url, body, "", want)
	if err != nil {
		b.Fatal(err)
	}
	return etag, got
}

// benchLoop runs op from every client goroutine until b.N ops are done.
// An error stops that goroutine and fails the benchmark.
func benchLoop(b *testing.B, setup func() (op func() error, err error)) {
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		op, err := setup()
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCreate measures POST /fhir/Patient: each op is one durable,
// acknowledged create.
func BenchmarkCreate(b *testing.B) {
	_, ts := apptest.New(b, app.Config{})
	body := benchPatient(b)
	c := benchClient()
	url := ts.URL + "/fhir/Patient"
	var n atomic.Int64
	b.SetBytes(int64(len(body)))
	benchLoop(b, func() (func() error, error) {
		return func() error {
			_, _, err := benchDo(c, http.MethodPost, url, withNHSNumber(body, n.Add(1)), "", http.StatusCreated)
			return err
		}, nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkRead measures GET /fhir/Patient/{id} of one stored Patient.
func BenchmarkRead(b *testing.B) {
	_, ts := apptest.New(b, app.Config{})
	c := benchClient()
	_, created := benchMust(b, c, http.MethodPost, ts.URL+"/fhir/Patient", benchPatient(b), http.StatusCreated)
	url := ts.URL + "/fhir/Patient/" + benchID(b, created)
	_, stored := benchMust(b, c, http.MethodGet, url, nil, http.StatusOK)
	b.SetBytes(int64(len(stored)))
	benchLoop(b, func() (func() error, error) {
		return func() error {
			_, _, err := benchDo(c, http.MethodGet, url, nil, "", http.StatusOK)
			return err
		}, nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkBareGin is the ceiling for BenchmarkRead: a bare gin engine
// serving the bytes the server answers for that read, with its ETag, from
// memory, over the same transport and client.
func BenchmarkBareGin(b *testing.B) {
	_, ts := apptest.New(b, app.Config{})
	c := benchClient()
	_, created := benchMust(b, c, http.MethodPost, ts.URL+"/fhir/Patient", benchPatient(b), http.StatusCreated)
	id := benchID(b, created)
	etag, stored := benchMust(b, c, http.MethodGet, ts.URL+"/fhir/Patient/"+id, nil, http.StatusOK)
	ts.Close()

	bare := httptest.NewServer(bareGin(stored, etag))
	defer bare.Close()
	url := bare.URL + "/fhir/Patient/" + id
	b.SetBytes(int64(len(stored)))
	benchLoop(b, func() (func() error, error) {
		return func() error {
			_, _, err := benchDo(c, http.MethodGet, url, nil, "", http.StatusOK)
			return err
		}, nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// bareGin returns a gin engine answering GET /fhir/:type/:id with body.
// api/testdata/baregin serves the same handler as a process for load runs.
func bareGin(body []byte, etag string) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/fhir/:type/:id", func(c *gin.Context) {
		c.Header("ETag", etag)
		c.Data(http.StatusOK, "application/fhir+json; charset=utf-8", body)
	})
	return r
}

// BenchmarkUpdate measures PUT /fhir/Patient/{id} with If-Match: each
// client goroutine updates its own Patient, one version after another.
func BenchmarkUpdate(b *testing.B) {
	_, ts := apptest.New(b, app.Config{})
	body := benchPatient(b)
	c := benchClient()
	var n atomic.Int64
	b.SetBytes(int64(len(body)))
	benchLoop(b, func() (func() error, error) {
		i := n.Add(1)
		id := fmt.Sprintf("bench-%d", i)
		url := ts.URL + "/fhir/Patient/" + id
		update := append([]byte(`{"id":"`+id+`",`), bytes.TrimPrefix(bytes.TrimSpace(withNHSNumber(body, i)), []byte("{"))...)
		etag, _, err := benchDo(c, http.MethodPut, url, update, "", http.StatusCreated)
		return func() error {
			etag, _, err = benchDo(c, http.MethodPut, url, update, etag, http.StatusOK)
			return err
		}, err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// withNHSNumber returns body with its NHS number replaced by the i-th
// valid one (Signpost refuses two Patients with one NHS number).
func withNHSNumber(body []byte, i int64) []byte {
	return bytes.Replace(body, []byte("9000000009"), []byte(nhsNumber(i)), 1)
}

// nhsNumber returns a valid NHS number, distinct for each i ≥ 0: nine
// digits 900000000+2i and the modulus-11 check digit. When that check digit
// would be 10 (no valid number), 900000000+2i+1 is used instead: its check
// digit differs by 2, and no other i reaches that odd base.
func nhsNumber(i int64) string {
	base := 900000000 + 2*i
	if checkDigit(base) == 10 {
		base++
	}
	return fmt.Sprintf("%d%d", base, checkDigit(base))
}

func checkDigit(base int64) int {
	sum := 0
	for k, d := range fmt.Sprint(base) {
		sum += int(d-'0') * (10 - k)
	}
	return (11 - sum%11) % 11
}

// benchID returns the id in a created resource's JSON.
func benchID(b *testing.B, created []byte) string {
	b.Helper()
	var res struct{ ID string }
	if err := json.Unmarshal(created, &res); err != nil || res.ID == "" {
		b.Fatalf("no id in %s (%v)", created, err)
	}
	return res.ID
}
