#!/usr/bin/env bash
# colorspark's one entry point.
#   ./build.sh           set up .venv from requirements.lock, check Java, build dist/colorspark-<version>.zip,
#                        install the `colorspark` command into .venv/bin
#   ./build.sh test      set up, then run the test suite (what CI runs)
#   ./build.sh demo      set up, then run preprocess -> train (tiny) -> colorize on sample photos
#   ./build.sh package   set up, then also pack the environment for --archives (dist/colorspark-env.tar.gz)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PYTHON_FOR_VENV=${PYTHON:-python3.11}

say() { printf '\033[1mcolorspark:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

version() { sed -n 's/^__version__ = "\(.*\)"/\1/p' colorspark/__init__.py; }

check_java() {
  command -v java >/dev/null 2>&1 || die "Java 17 or newer is required by Spark 4 and was not found.
  Install it, e.g. on Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless
  (or set JAVA_HOME to a JDK 17+ and put \$JAVA_HOME/bin on PATH)."
  local v major
  v=$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -1)
  major=${v%%.*}
  [ "$major" = "1" ] && major=$(echo "$v" | cut -d. -f2)
  [ -n "$major" ] && [ "$major" -ge 17 ] 2>/dev/null || die "Java $v found, but Spark 4 needs Java 17 or newer.
  Install it, e.g.: sudo apt-get install -y openjdk-17-jre-headless, and make it the default java."
}

setup_venv() {
  local stamp="$VENV/.colorspark-lock-sha"
  local want
  want=$(sha256sum requirements.lock | cut -d' ' -f1)
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  command -v "$PYTHON_FOR_VENV" >/dev/null 2>&1 || die "$PYTHON_FOR_VENV not found: colorspark is tested on Python 3.11
  (set PYTHON=/path/to/python3.11 to choose another interpreter)."
  say "creating $VENV from requirements.lock (first run downloads ~1 GB, a few minutes)"
  [ -x "$PY" ] || "$PYTHON_FOR_VENV" -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.lock
  echo "$want" > "$stamp"
}

build_zip() {
  mkdir -p dist
  "$PY" - "$(version)" <<'EOF'
import os, sys, zipfile
version = sys.argv[1]
target = f"dist/colorspark-{version}.zip"
tmp = target + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for folder, dirs, files in os.walk("colorspark"):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                info = zipfile.ZipInfo(os.path.join(folder, name), date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(os.path.join(folder, name), "rb") as fh:
                    zf.writestr(info, fh.read())
    for name in ("colorspark.json", "model.keras"):  # the shipped model, for drivers without a checkout
        info = zipfile.ZipInfo(f"colorspark/shipped/small/{name}", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        with open(f"models/small/{name}", "rb") as fh:
            zf.writestr(info, fh.read())
os.replace(tmp, target)
print(target)
EOF
}

install_spark_conf() {
  # spark-submit reads $SPARK_HOME/conf; pip's pyspark ships none, so its start-up is very chatty without this.
  local spark_home
  spark_home=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  mkdir -p "$spark_home/conf"
  cmp -s conf/log4j2.properties "$spark_home/conf/log4j2.properties" || cp conf/log4j2.properties "$spark_home/conf/"
  # Python worker start-up: quiet TensorFlow pre-import, no per-task GC and zip re-read costs (worker_startup/colorspark_worker_init.py).
  local site
  site=$(dirname "$spark_home")
  cmp -s worker_startup/colorspark_worker_init.py "$site/colorspark_worker_init.py" || cp worker_startup/colorspark_worker_init.py "$site/"
  echo "import colorspark_worker_init" > "$site/colorspark_worker_init.pth"
}

install_command() {
  # .venv/bin/colorspark runs a job through spark-submit with the local defaults (colorspark/command.py). It uses the
  # checkout it is run from (the working directory or a folder above it), else the one that installed it.
  local target="$VENV/bin/colorspark" tmp
  tmp=$(mktemp "$VENV/bin/.colorspark.XXXXXX")
  cat > "$tmp" <<EOF
#!/usr/bin/env bash
# colorspark preprocess|train|colorize|demo [spark-submit options] [job options]  (installed by ./build.sh)
root=\$PWD
while [ "\$root" != / ] && ! { [ -f "\$root/colorspark/command.py" ] && [ -f "\$root/build.sh" ]; }; do
  root=\$(dirname "\$root")
done
[ -f "\$root/colorspark/command.py" ] || root=$(printf '%q' "$ROOT")
PYTHONPATH="\$root\${PYTHONPATH:+:\$PYTHONPATH}" exec "\$(dirname "\$0")/python" -m colorspark.command "\$@"
EOF
  chmod +x "$tmp"
  if cmp -s "$tmp" "$target"; then rm -f "$tmp"; else mv "$tmp" "$target"; fi
}

setup() {
  check_java
  setup_venv
  install_spark_conf
  ZIP=$(build_zip)
  install_command
  export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY"
}

case "${1:-build}" in
  build)
    setup
    say "ready: $ZIP (for spark-submit --py-files); Python environment in .venv; command: .venv/bin/colorspark"
    ;;
  test)
    shift
    setup
    say "checking the code with ruff"
    "$VENV/bin/ruff" check .
    say "running the test suite"
    exec "$PY" -m pytest "$@"
    ;;
  demo)
    setup
    started=$SECONDS
    "$VENV/bin/colorspark" demo --output "$ROOT/demo-out"
    say "demo finished in $((SECONDS - started)) s"
    ;;
  package)
    setup
    say "packing .venv into dist/colorspark-env.tar.gz (for spark-submit --archives ...#environment)"
    rm -f dist/colorspark-env.tar.gz.tmp
    # --format: venv-pack infers the format from the file name, and the temporary name ends in .tmp
    "$VENV/bin/venv-pack" -p "$VENV" -o dist/colorspark-env.tar.gz.tmp --format tar.gz --compress-level 1 -q
    mv dist/colorspark-env.tar.gz.tmp dist/colorspark-env.tar.gz
    say "ready: $ZIP and dist/colorspark-env.tar.gz"
    ;;
  *)
    die "unknown command '$1' (use: ./build.sh [build|test|demo|package])"
    ;;
esac
