package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// The App's metrics (docs/operations.md lists them). Each App has its own
// registry, so that servers started side by side (tests) do not share
// counters; serve --metrics-addr serves it (MetricsHandler) on a listener
// of its own, never the FHIR one. The API registers its request metrics
// and the audit queue's depth itself (api.Config.Metrics); the rest are
// here: the Go runtime and the process, bookings, the store's commits,
// and, read on each scrape, the adapters' states and the outbox.

// metrics is what app adds to the registry.
type metrics struct {
	reg *prometheus.Registry

	bookings  prometheus.Counter
	holds     prometheus.Counter
	conflicts *prometheus.CounterVec
	released  prometheus.Counter

	batchSize   prometheus.Histogram
	batchTime   prometheus.Histogram
	commitTime  prometheus.Histogram
	commitsSeen bool // the store reports its commits (ObserveCommits)
}

// newMetrics returns a registry with the runtime and process collectors
// and the counters of the domain.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(),
		bookings: prometheus.NewCounter(prometheus.CounterOpts{Name: "signpost_bookings_total",
			Help: "Appointments whose slots became busy: bookings, holds confirmed, bookings another system confirmed."}),
		holds: prometheus.NewCounter(prometheus.CounterOpts{Name: "signpost_holds_created_total",
			Help: "Appointments whose slots became busy-tentative until their hold expires ($hold, pending Appointments, bookings awaiting another system)."}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "signpost_booking_conflicts_total",
			Help: "Bookings refused with 409, by error code: SLOT_NOT_AVAILABLE (a slot was taken), HOLD_EXPIRED."}, []string{"code"}),
		released: prometheus.NewCounter(prometheus.CounterOpts{Name: "signpost_holds_expired_total",
			Help: "Holds released because they expired (their slots freed)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "signpost_store_commit_batch_size",
			Help:    "Writes (store transactions of requests) that shared one commit of the store's writer.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9)}), // 1 … 256, the writer's largest batch
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "signpost_store_batch_seconds",
			Help:    "How long the store's writer held a batch transaction, from BEGIN to the end of COMMIT.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "signpost_store_commit_seconds",
			Help:    "The COMMIT of a batch transaction: the write-ahead log written and synced.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.bookings, m.holds, m.conflicts, m.released)
	// Both codes are shown from the start (at 0), so that a rate over
	// them has a series before the first conflict.
	m.conflicts.WithLabelValues(booking.ErrSlotNotAvailable)
	m.conflicts.WithLabelValues(booking.ErrHoldExpired)
	return m
}

// The domain's outcomes (booking.Observer).
var _ booking.Observer = (*metrics)(nil)

func (m *metrics) Booked()             { m.bookings.Inc() }
func (m *metrics) Held()               { m.holds.Inc() }
func (m *metrics) Refused(code string) { m.conflicts.WithLabelValues(code).Inc() }
func (m *metrics) Released(n int)      { m.released.Add(float64(n)) }

// commitObserver is a store that reports its commits (store/sqlite).
type commitObserver interface {
	ObserveCommits(func(sqlite.CommitStats))
}

var _ commitObserver = (*sqlite.Store)(nil)

// cacher is a store that reports its caches (store/sqlite).
type cacher interface {
	Caches() map[string]sqlite.CacheStats
}

var _ cacher = (*sqlite.Store)(nil)

// observeStore has st report its commits, when it can (the SQLite store:
// the MongoDB store has no writer of its own to observe), and has the
// caches of st and of the audit database (nil: none) read on each scrape.
func (m *metrics) observeStore(st, audits store.Store) {
	caches := cacheCollector{}
	for name, s := range map[string]store.Store{"main": st, "audit": audits} {
		if c, ok := s.(cacher); ok {
			caches[name] = c
		}
	}
	if len(caches) > 0 {
		m.reg.MustRegister(caches)
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "signpost_sqlite_memory_bytes",
			Help: "Bytes SQLite holds allocated in the process, over every store and connection (page caches, statements): outside the Go heap."},
			func() float64 { return float64(sqlite.MemoryUsed().Used) }))
	}
	o, ok := st.(commitObserver)
	if !ok {
		return
	}
	m.reg.MustRegister(m.batchSize, m.batchTime, m.commitTime)
	o.ObserveCommits(func(cs sqlite.CommitStats) {
		m.batchSize.Observe(float64(cs.Requests))
		m.batchTime.Observe(cs.Batch.Seconds())
		m.commitTime.Observe(cs.Commit.Seconds())
	})
	m.commitsSeen = true
}

// stopObserving stops st's reports (Close: the store outlives no App).
func (m *metrics) stopObserving(st store.Store) {
	if o, ok := st.(commitObserver); ok && m != nil && m.commitsSeen {
		o.ObserveCommits(nil)
	}
}

// cacheCollector reports, on each scrape, the caches of the SQLite
// stores by store ("main", "audit") and cache ("bodies", "heads").
type cacheCollector map[string]cacher

var (
	cacheHitsDesc = prometheus.NewDesc("signpost_store_cache_hits_total",
		"Lookups a store's cache answered (docs/body-cache.md).", []string{"store", "cache"}, nil)
	cacheMissesDesc = prometheus.NewDesc("signpost_store_cache_misses_total",
		"Lookups a store's cache could not answer: read from the database.", []string{"store", "cache"}, nil)
	cacheEntriesDesc = prometheus.NewDesc("signpost_store_cache_entries",
		"Entries a store's cache holds.", []string{"store", "cache"}, nil)
	cacheBytesDesc = prometheus.NewDesc("signpost_store_cache_bytes",
		"Bytes a store's cache holds, as counted against its budget.", []string{"store", "cache"}, nil)
)

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheEntriesDesc, cacheBytesDesc} {
		ch <- d
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	for st, s := range c {
		for cache, cs := range s.Caches() {
			ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(cs.Hits), st, cache)
			ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(cs.Misses), st, cache)
			ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(cs.Entries), st, cache)
			ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(cs.Bytes), st, cache)
		}
	}
}

// MetricsHandler returns the handler of the App's metrics in the
// Prometheus text format (serve --metrics-addr serves it on its own
// listener). It needs no token: serve it where only the monitoring
// system reaches (loopback by default).
func (a *App) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.Metrics, promhttp.HandlerOpts{Registry: a.Metrics, MaxRequestsInFlight: 4,
		Timeout: 10 * time.Second})
}

// collectState adds the collector of the adapters' states and the outbox
// to the registry, once the adapters are started.
func (a *App) collectState() {
	c := &stateCollector{adapters: a.Adapters, now: time.Now}
	c.outbox, _ = a.Store.(store.OutboxAdmin)
	if c.adapters != nil && len(c.adapters.Names()) == 0 {
		c.adapters = nil
	}
	a.metrics.reg.MustRegister(c)
}

// stateCollector reports, on each scrape, what is read rather than
// counted: the adapter instances' states and what waits in the outbox.
type stateCollector struct {
	adapters *adapters.Set     // nil: no adapter instance
	outbox   store.OutboxAdmin // nil: the store keeps no outbox
	now      func() time.Time
}

var (
	adapterStateDesc = prometheus.NewDesc("signpost_adapter_state",
		"An adapter instance's state: 1 for the state it is in, 0 for the others.", []string{"instance", "kind", "state"}, nil)
	outboxDesc = prometheus.NewDesc("signpost_outbox_messages",
		"Outbound messages not yet delivered, by destination (an adapter instance) and state: pending (waiting or retrying), in-flight, dead (dead letters).",
		[]string{"destination", "state"}, nil)
	outboxAgeDesc = prometheus.NewDesc("signpost_outbox_oldest_pending_seconds",
		"Age of the oldest message pending or in flight, by destination: how far delivery lags.", []string{"destination"}, nil)
)

// adapterStates are the states signpost_adapter_state shows for every
// instance.
var adapterStates = []adapters.State{adapters.StateUp, adapters.StateDegraded, adapters.StateDown, adapters.StateStopped}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- adapterStateDesc
	ch <- outboxDesc
	ch <- outboxAgeDesc
}

// Collect implements prometheus.Collector. An outbox that cannot be read
// is reported to the scraper as an invalid metric (the scrape shows the
// error), the other metrics still served.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.adapters != nil {
		for _, st := range c.adapters.Status(ctx) {
			for _, s := range adapterStates {
				v := 0.0
				if st.State == s {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(adapterStateDesc, prometheus.GaugeValue, v, st.Name, st.Kind, string(s))
			}
		}
	}
	if c.outbox == nil {
		return
	}
	now := c.now()
	backlog, err := c.outbox.Backlog(ctx, now)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxDesc, err)
		return
	}
	for _, b := range backlog {
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(b.Pending), b.Destination, "pending")
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(b.InFlight), b.Destination, "in-flight")
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(b.Dead), b.Destination, "dead")
		age := 0.0
		if !b.OldestPending.IsZero() {
			age = max(now.Sub(b.OldestPending).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, age, b.Destination)
	}
}
