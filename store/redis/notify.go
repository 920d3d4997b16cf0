package redis

import (
	"context"
	"errors"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zonegate/zonegate/store"
)

// Publish sends msg to channel's subscribers on every node sharing this Redis and prefix.
func (s *Store) Publish(ctx context.Context, channel, msg string) error {
	if err := s.client.Publish(ctx, s.prefix+channel, msg).Err(); err != nil {
		return s.unavailable(ctx, opName{what: "publishing a notification"}, err)
	}
	return nil
}

// pingEvery is how often an idle subscription checks its link, so a dead link is noticed even
// when no message and no TCP reset arrives.
const pingEvery = time.Second

// Subscribe listens on channel in a goroutine until stop is called: messages go to fn, link
// changes to onLink. A dropped link is retried with a growing pause (up to one second).
func (s *Store) Subscribe(channel string, fn func(msg string), onLink func(up bool)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		up := false
		setLink := func(v bool) {
			if v != up {
				up = v
				if onLink != nil {
					onLink(v)
				}
			}
		}
		pause := 50 * time.Millisecond
		for ctx.Err() == nil {
			if s.listen(ctx, s.prefix+channel, fn, func() { setLink(true); pause = 50 * time.Millisecond }) {
				return
			}
			setLink(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
		}
	}()
	return func() { cancel(); <-done }
}

// listen subscribes once and delivers messages until the link fails (false) or ctx ends (true).
func (s *Store) listen(ctx context.Context, channel string, fn func(string), listening func()) bool {
	ps := s.client.Subscribe(ctx, channel)
	defer ps.Close()
	// The first reply confirms the subscription: from then on no message is missed.
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		return ctx.Err() != nil
	}
	listening()
	pinged := false // a ping is out: the next quiet second means the link is dead
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if ctx.Err() != nil {
			return true
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if pinged {
				return false
			}
			if err := ps.Ping(ctx); err != nil {
				return false
			}
			pinged = true
			continue
		}
		if err != nil {
			return false
		}
		pinged = false
		if m, ok := msg.(*goredis.Message); ok {
			fn(m.Payload)
		}
	}
}

var _ store.Notifier = (*Store)(nil)
