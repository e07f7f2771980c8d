package cache

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func benchCache(b *testing.B, name string) *Cache {
	o := Options{}
	if name == "encrypted" {
		o.Key = key1
	}
	return newCache(b, memDB(b), o)
}

func benchEntry() Entry {
	return Entry{
		Created:  time.Now(),
		Provider: "openai",
		Model:    "gpt-4o-mini",
		CostUSD:  0.0021,
		Payload:  chatPayload(10 << 10),
	}
}

// chatPayload is a chat-completion-like JSON answer of about n bytes
// whose text is drawn at random from a vocabulary, so it compresses
// roughly like prose (about 3×) rather than like a repeated pattern.
func chatPayload(n int) []byte {
	words := strings.Fields(`the of and to a in is that for it as was with be by on not he
		this are or his from at which but have an they you were her she there would their we
		him been has when who will more no if out so said what up its about into than them can
		only other new some could time these two may then do first any my now such like our over
		man me even most made after also did many before must through back years where much your
		way well down should because each just those people how too little state good very make
		world still own see men work long get here between both life being under never day same
		another know while last might us great old year off come since against go came right used
		take three model token stream cache request answer function tool json value error latency`)
	rnd := randomBytes(n, 42)
	var b strings.Builder
	b.WriteString(`{"id":"chatcmpl-9x8y7z","object":"chat.completion","created":1735689600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"`)
	for i := 0; b.Len() < n-200; i++ {
		b.WriteString(words[int(rnd[i%len(rnd)])*len(words)/256])
		switch {
		case rnd[(i*7+3)%len(rnd)] < 12:
			b.WriteString(`.\n\n`)
		case rnd[(i*5+1)%len(rnd)] < 20:
			b.WriteString(", ")
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteString(`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1234,"completion_tokens":2345,"total_tokens":3579}}`)
	return []byte(b.String())
}

// BenchmarkGet: hits on a 10 KB JSON answer.
func BenchmarkGet(b *testing.B) {
	for _, name := range []string{"plain", "encrypted"} {
		b.Run(name, func(b *testing.B) {
			c := benchCache(b, name)
			e := benchEntry()
			keys := make([]Key, 64)
			for i := range keys {
				keys[i] = testKey(fmt.Sprint(i))
				if err := c.Put(keys[i], e); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(e.Payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, ok, err := c.Get(keys[i%len(keys)]); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkPut: stores of a 10 KB JSON answer (overwriting 64 keys).
func BenchmarkPut(b *testing.B) {
	for _, name := range []string{"plain", "encrypted"} {
		b.Run(name, func(b *testing.B) {
			c := benchCache(b, name)
			e := benchEntry()
			keys := make([]Key, 64)
			for i := range keys {
				keys[i] = testKey(fmt.Sprint(i))
			}
			b.SetBytes(int64(len(e.Payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := c.Put(keys[i%len(keys)], e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
