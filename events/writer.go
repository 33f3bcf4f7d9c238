package events

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MaxLen is about how many entries an app's stream keeps; XADD trims older ones
// (MAXLEN ~) as it appends.
const MaxLen = 100000

// appendLua defines append_event, the one Lua function that writes a stream entry:
//
//	append_event(key, id, type, app, actor, actor_id, time, data)
//
// appends the entry whose fields are those, in that order, to the stream at key.
var appendLua = func() string {
	fields := []string{fieldID, fieldType, fieldApp, fieldActor, fieldActorID, fieldTime, fieldData}
	pairs := make([]string, len(fields))
	for i, f := range fields {
		pairs[i] = fmt.Sprintf("'%s', v[%d]", f, i+1)
	}
	return fmt.Sprintf(`local function append_event(key, ...)
  local v = {...}
  return redis.call('XADD', key, 'MAXLEN', '~', %d, '*', %s)
end
`, MaxLen, strings.Join(pairs, ", "))
}()

// Script returns the Redis script body preceded by the definition of append_event,
// through which every script that reports a change appends its event, in the same
// step as the change:
//
//	append_event(key, id, type, app, actor, actor_id, time, data)
//
// key is the app's events stream (store.EventsKey), id a ULID, type one of the
// constants of this package passed in ARGV, actor_id "" when there is none, time
// RFC 3339 with nanoseconds, and data the JSON of the resource after the change.
func Script(body string) *redis.Script {
	return redis.NewScript(appendLua + body)
}
