#!/usr/bin/env bash
# Fetch Apache Kafka (org.apache.kafka:kafka_2.13, the broker, and org.apache.kafka:kafka-tools,
# the command-line tools, with their runtime dependencies, kafka-clients among them) from Maven
# Central into .cache/kafka/VERSION/libs, unless it is already there. Prints that libs directory
# on stdout; everything else goes to stderr. Run a broker with, for example:
#
#   libs=$(scripts/fetch-kafka.sh)
#   id=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)
#   java -cp "$libs/*" kafka.tools.StorageTool format -t "$id" -c server.properties --standalone
#   java -cp "$libs/*" kafka.Kafka server.properties
#
# server.properties is a KRaft combined broker+controller config (process.roles=broker,controller,
# controller.quorum.bootstrap.servers, listeners, log.dirs, and replication factors of 1 for the
# internal topics). Logging goes through log4j2, ERROR and above to the console unless
# -Dlog4j2.configurationFile=FILE says otherwise.
#
# The tools run from the same directory, for example:
#
#   java -cp "$libs/*" org.apache.kafka.tools.ConsoleProducer --bootstrap-server HOST:PORT --topic T
#   java -cp "$libs/*" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server ...
#   java -cp "$libs/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --describe ...
#
# Usage: scripts/fetch-kafka.sh [VERSION]   (default: $KAFKA_VERSION, else 4.1.1)
# Needs Java 17+ and Maven (installed with apt-get when missing and running as root).
set -euo pipefail

version=${1:-${KAFKA_VERSION:-4.1.1}}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/.cache/kafka/$version"
libs="$dest/libs"
log4j_version=${LOG4J_VERSION:-2.24.3}   # the log4j2 version Kafka 4.1 ships with

# Complete when Maven finished (.complete) and the tools are there (a cache made before they were
# fetched too lacks them and is fetched again).
complete() {
    [ -f "$dest/.complete" ] && [ -f "$libs/kafka-tools-$version.jar" ]
}

if complete; then
    echo "$libs"
    exit 0
fi

# Several test workers may ask at once: one fetches, the others wait and reuse its result.
mkdir -p "$root/.cache/kafka"
exec 9>"$root/.cache/kafka/.lock"
flock 9
if complete; then
    echo "$libs"
    exit 0
fi

if ! command -v mvn >/dev/null 2>&1; then
    "$root/scripts/install-system-deps.sh" maven
    command -v mvn >/dev/null 2>&1 || { echo "fetch-kafka: Maven (mvn) is needed" >&2; exit 1; }
fi

echo "fetching Apache Kafka $version (kafka_2.13, kafka-tools) into $libs" >&2
rm -rf "$dest"
mkdir -p "$dest"
cat > "$dest/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>millstream.test</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$version</version>
    </dependency>
    <!-- the broker logs through SLF4J 1.x; the Kafka distribution binds it to log4j2 -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$log4j_version</version>
    </dependency>
  </dependencies>
</project>
POM

if ! mvn --batch-mode --file "$dest/pom.xml" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" \
    >"$dest/mvn.log" 2>&1; then
    tail -n 40 "$dest/mvn.log" >&2
    echo "fetch-kafka: Maven failed; the full log is $dest/mvn.log" >&2
    exit 1
fi
touch "$dest/.complete"
echo "$libs"
