# ccomet build. Plain GNU make: every .c under src/ is compiled, nothing is generated.
#
#   make            release build       -> build/ccomet
#   make asan       ASan+UBSan build    -> build/asan/ccomet, build/asan/unit-tests
#   make fuzz       libFuzzer targets   -> build/fuzz/<parser>   (clang)
#   make run        install what is missing, build, start ccomet on ./comet.ini (or defaults)
#   make test       install what is missing, then unit + fuzz-replay + integration tiers
#   make bench      benchmarks under bench/ (ccomet against its peers, same run)
#   make bench-media ccomet-media against Janus's VideoRoom (bench/media/run.sh)
#   make format     clang-format every source file in place

CC      ?= cc
PKGS    := libuv sqlite3 openssl jansson libosip2 libxml-2.0 liburing
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
               -Wno-unused-parameter -Isrc -g $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread

MEDIA_PKGS := glib-2.0 gio-2.0 gstreamer-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0 libsoup-3.0 libxml-2.0
MEDIA_CFLAGS := $(shell pkg-config --cflags $(MEDIA_PKGS) 2>/dev/null) -DGST_USE_UNSTABLE_API
MEDIA_LIBS   := $(shell pkg-config --libs $(MEDIA_PKGS) 2>/dev/null)

CORE_SRC   := $(wildcard src/core/*.c)
PROTO_SRC  := $(wildcard src/proto/*.c)
# ccomet: the CometQL server, the browser side (push), the Video API, the state backend, and the
# process (main, listeners, TLS); see the README's tour of the source.
SERVER_DIRS := cometql push video state server
SERVER_SRC := $(filter-out src/server/main.c,$(foreach d,$(SERVER_DIRS),$(wildcard src/$(d)/*.c)))
LIB_SRC    := $(CORE_SRC) $(PROTO_SRC) $(SERVER_SRC)
UNIT_SRC   := $(wildcard tests/unit/*.c tests/unit/*/*.c)
MEDIA_SRC  := $(filter-out src/media/main.c,$(wildcard src/media/*.c))
FUZZ_DIRS  := $(patsubst fuzz/%/,%,$(dir $(wildcard fuzz/*/driver.c)))

REL_OBJ  := $(patsubst %.c,build/obj/%.o,$(LIB_SRC))
ASAN_OBJ := $(patsubst %.c,build/asan/obj/%.o,$(LIB_SRC))
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: all asan fuzz fuzz-short fuzz-long run run-cluster test test-media bench bench-media deps format format-check clean
all: build/ccomet build/ccomet-media

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -MMD -MP -c $< -o $@

build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 $(SAN) -MMD -MP -c $< -o $@

build/ccomet: $(REL_OBJ) build/obj/src/server/main.o
	$(CC) -o $@ $^ $(LDLIBS)

# ccomet-media: the same core and parsers, plus src/media on GLib, GStreamer and libsoup.
MEDIA_REL_OBJ  := $(patsubst %.c,build/obj/%.o,$(MEDIA_SRC) src/media/main.c)
MEDIA_ASAN_OBJ := $(patsubst %.c,build/asan/obj/%.o,$(MEDIA_SRC) src/media/main.c)
$(MEDIA_REL_OBJ) $(MEDIA_ASAN_OBJ): CFLAGS_BASE += $(MEDIA_CFLAGS)
build/ccomet-media: $(patsubst %.c,build/obj/%.o,$(CORE_SRC) $(PROTO_SRC)) $(MEDIA_REL_OBJ)
	$(CC) -o $@ $^ $(LDLIBS) $(MEDIA_LIBS)
build/asan/ccomet-media: $(patsubst %.c,build/asan/obj/%.o,$(CORE_SRC) $(PROTO_SRC)) $(MEDIA_ASAN_OBJ)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS) $(MEDIA_LIBS)

build/asan/ccomet: $(ASAN_OBJ) build/asan/obj/src/server/main.o
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

# JsSIP for the browser: the npm package ships only CommonJS, so esbuild bundles it into one
# minified IIFE script defining the global JsSIP; ccomet serves it from web/ as /lib/jssip.js.
JSSIP_BUNDLE := web/lib/jssip.js
$(JSSIP_BUNDLE): package-lock.json node_modules/.package-lock.json
	@mkdir -p $(dir $@)
	node_modules/.bin/esbuild node_modules/jssip/lib/JsSIP.js --bundle --minify --format=iife \
		--global-name=JsSIP --platform=browser --target=es2019 --log-level=warning --outfile=$@

node_modules/.package-lock.json:
	@scripts/deps.sh

# The mixer's stand-alone harness (a room behind HTTP, no SIP) for tests/integration/media_mixer.
build/media-harness: tests/media/mixer_harness.c src/media/mixer.c src/media/mixer.h src/core/log.c src/core/alloc.c
	@mkdir -p build
	$(CC) $(CFLAGS_BASE) $(MEDIA_CFLAGS) -O1 $(SAN) -o $@ tests/media/mixer_harness.c src/media/mixer.c src/core/log.c src/core/alloc.c $(MEDIA_LIBS) -lm

# unit tests link everything but the two main()s (the media modules need GLib and GStreamer)
UNIT_ASAN_OBJ := $(patsubst %.c,build/asan/obj/%.o,$(UNIT_SRC))
$(UNIT_ASAN_OBJ): CFLAGS_BASE += $(MEDIA_CFLAGS) -Itests/unit
build/asan/unit-tests: $(ASAN_OBJ) $(patsubst %.c,build/asan/obj/%.o,$(MEDIA_SRC)) $(UNIT_ASAN_OBJ)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS) $(MEDIA_LIBS)

asan: build/asan/ccomet build/asan/ccomet-media build/asan/unit-tests

# Fuzz targets link only the parser objects they exercise (plus core), built by clang.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined
build/fuzz/%: fuzz/%/driver.c $(CORE_SRC) $(PROTO_SRC) $(wildcard src/core/*.h src/proto/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(PROTO_SRC) $(shell pkg-config --cflags --libs openssl jansson libosip2)

fuzz: $(addprefix build/fuzz/,$(FUZZ_DIRS))

deps:
	@scripts/deps.sh

# The builds run in a sub-make: the pkg-config flags above are read when make starts, before
# deps has installed the -dev packages on a fresh machine.
run: deps
	@$(MAKE) --no-print-directory build/ccomet build/ccomet-media $(JSSIP_BUNDLE)
	@scripts/run.sh

# Three ccomet nodes on one redis-server ([store] type = redis), all on loopback.
run-cluster: deps
	@$(MAKE) --no-print-directory build/ccomet
	@scripts/run-cluster.sh

test: deps
	@$(MAKE) --no-print-directory format-check asan build/ccomet build/ccomet-media fuzz \
		build/media-harness $(JSSIP_BUNDLE)
	@tests/run.sh

# libFuzzer runs (scripts/fuzz.sh; new inputs in var/fuzz/): fuzz-short is each target for 30 s,
# two at a time, from a random seed (make test's tier is the fixed-seed scripts/fuzz.sh -c -s 1);
# fuzz-long is the campaign, each target up to 10 million
# executions or 30 minutes, one at a time, so it can run niced in the background while you work.
fuzz-short: fuzz
	@scripts/fuzz.sh -t 30

fuzz-long: fuzz
	@nice -n 19 scripts/fuzz.sh -t 1800 -r 10000000 -j 1

# Only the media tests (headless Chromium in a network namespace: the mixer through its harness,
# JsSIP against ccomet-media, its SIP and Event Socket); `make test` runs them with the rest.
test-media: deps
	@$(MAKE) --no-print-directory build/media-harness build/asan/ccomet-media $(JSSIP_BUNDLE)
	@TEST_FILES="$(wildcard tests/integration/media_*.test.mjs)" tests/run.sh integration

bench: deps
	@$(MAKE) --no-print-directory build/ccomet
	@bench/run.sh

# The media benchmark's load client (bench/media/media_load.c): GStreamer webrtcbin, libsoup, jansson.
build/bench/media_load: bench/media/media_load.c
	@mkdir -p build/bench
	$(CC) $(CFLAGS_BASE) $(MEDIA_CFLAGS) -O2 -o $@ $< $(shell pkg-config --cflags --libs gstreamer-video-1.0 jansson 2>/dev/null) $(MEDIA_LIBS) -lm

bench-media: deps
	@$(MAKE) --no-print-directory build/ccomet-media build/bench/media_load
	@bench/media/run.sh

format:
	clang-format -i $(LIB_SRC) $(MEDIA_SRC) src/server/main.c $(wildcard src/media/main.c) $(UNIT_SRC) $(wildcard fuzz/*/driver.c) $(wildcard src/*/*.h tests/unit/*.h)

format-check:
	clang-format --dry-run -Werror $(LIB_SRC) $(MEDIA_SRC) src/server/main.c $(wildcard src/media/main.c) $(UNIT_SRC) $(wildcard fuzz/*/driver.c) $(wildcard src/*/*.h tests/unit/*.h)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
