package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/source"
)

func TestTiming(t *testing.T) {
	start := time.Now()
	data := manyEntriesTarGz()
	t.Logf("build %v (%d bytes)", time.Since(start), len(data))
	p := writeTemp(t, data)
	start = time.Now()
	_, err := source.Inspect(context.Background(), p, source.TarGz, source.DefaultLimits())
	t.Logf("inspect %v %v", time.Since(start), err)
	tg := newTarget(t)
	start = time.Now()
	_, err = source.Extract(context.Background(), p, source.TarGz, tg.out, source.DefaultLimits())
	t.Logf("extract %v %v", time.Since(start), err)
}
