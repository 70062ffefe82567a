package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signpost-fhir/signpost/adapters/dispatch"
	"github.com/signpost-fhir/signpost/adapters/notify"
	"github.com/signpost-fhir/signpost/domain/reminder"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/store"
)

// Reminders runs appointment reminders (serve --reminders FILE): the
// reminder service (domain/reminder), whose sweeps make the reminders
// due, and a dispatcher per channel (adapters/dispatch over the store's
// outbox) sending them through adapters/notify.
type Reminders struct {
	Service     *reminder.Service
	made        *prometheus.CounterVec // reminders made by sweeps, by outcome
	every       time.Duration
	dispatchers map[reminder.Channel]*dispatch.Dispatcher
	log         *slog.Logger
	stop        func()
}

// startReminders builds and starts the reminders cfg.Reminders
// configures; none without it.
func (a *App) startReminders() error {
	f := a.Config.Reminders
	if f == nil {
		return nil
	}
	if err := f.Validate(); err != nil {
		return err
	}
	ob, ok := a.Store.(store.Outbox)
	if !ok {
		return errors.New("the store keeps no outbox, which reminders are sent through")
	}
	rc := f.ReminderConfig()
	rc.Location, rc.Logger = a.Location, a.Config.Logger
	svc, err := reminder.New(rc, a.Writes, a.Search)
	if err != nil {
		return err
	}
	senders, err := notify.Build(f, svc, a.Config.Logger)
	if err != nil {
		return err
	}
	r := &Reminders{Service: svc, every: f.SweepEvery.Or(notify.DefaultSweepEvery),
		dispatchers: map[reminder.Channel]*dispatch.Dispatcher{}, log: a.Config.Logger}
	if err := r.registerMetrics(a.Metrics); err != nil {
		return err
	}
	for ch, s := range senders {
		dc := f.DispatchConfig(ch)
		dc.Logger = a.Config.Logger
		d, err := dispatch.New(ob, s, dc)
		if err != nil {
			return fmt.Errorf("channel %s: %w", ch, err)
		}
		r.dispatchers[ch] = d
	}
	a.Reminders = r
	if f.Hooks.Manual {
		return nil
	}
	ctx, cancel := context.WithCancel(write.AsServer(context.Background()))
	var wg sync.WaitGroup
	for _, d := range r.dispatchers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.run(ctx) }()
	r.stop = func() { cancel(); wg.Wait() }
	return nil
}

// run sweeps now and then every r.every until ctx ends.
func (r *Reminders) run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("reminders: sweep", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep makes the reminders due now (reminder.Service.Sweep) and wakes the
// dispatchers of the channels it queued reminders for.
func (r *Reminders) Sweep(ctx context.Context) (reminder.SweepResult, error) {
	res, err := r.Service.Sweep(ctx)
	r.made.WithLabelValues("not-done", "").Add(float64(res.NotDone))
	for ch, n := range res.Queued {
		r.made.WithLabelValues("queued", string(ch)).Add(float64(n))
	}
	for ch := range res.Queued {
		if d := r.dispatchers[ch]; d != nil {
			d.Wake()
		}
	}
	return res, err
}

// Deliver has each channel's dispatcher claim and send once what is due
// (dispatch.Dispatcher.DispatchOnce); it returns how many messages were
// claimed. The dispatchers also run by themselves: this is for tests and
// tools that want it done now.
func (r *Reminders) Deliver(ctx context.Context) (int, error) {
	n := 0
	var errs []error
	for _, d := range r.dispatchers {
		k, err := d.DispatchOnce(ctx)
		n += k
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// Status returns each channel's dispatcher status.
func (r *Reminders) Status() map[reminder.Channel]dispatch.Status {
	out := map[reminder.Channel]dispatch.Status{}
	for ch, d := range r.dispatchers {
		out[ch] = d.Status()
	}
	return out
}

// registerMetrics registers the reminders' metrics with reg:
// signpost_reminders_total{outcome="queued"|"not-done", channel} made by
// sweeps, and per channel the dispatcher's
// signpost_reminder_deliveries_total{channel, result="delivered"|"retried"|"dead-lettered"}.
func (r *Reminders) registerMetrics(reg *prometheus.Registry) error {
	r.made = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "signpost_reminders_total",
		Help: "Appointment reminders made by sweeps: queued for a channel, or recorded not-done (opted out, no contact point)."},
		[]string{"outcome", "channel"})
	if reg == nil {
		return nil
	}
	deliveries := prometheus.NewDesc("signpost_reminder_deliveries_total",
		"Reminder messages delivered, retried or dead-lettered by each channel's dispatcher since start.",
		[]string{"channel", "result"}, nil)
	return errors.Join(reg.Register(r.made), reg.Register(&deliveryCollector{r: r, desc: deliveries}))
}

// deliveryCollector reads the dispatchers' counts when scraped.
type deliveryCollector struct {
	r    *Reminders
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *deliveryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	for channel, st := range c.r.Status() {
		for result, n := range map[string]int64{"delivered": st.Delivered, "retried": st.Retried, "dead-lettered": st.DeadLettered} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), string(channel), result)
		}
	}
}

// close stops the sweeps and the dispatchers.
func (r *Reminders) close() {
	if r != nil && r.stop != nil {
		r.stop()
	}
}
