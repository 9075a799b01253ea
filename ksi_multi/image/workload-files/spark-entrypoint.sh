#!/bin/bash
# The roles Spark's Kubernetes backend starts this image with:
#   driver ARGS...    the driver pod of `spark-submit --deploy-mode cluster` (runs spark-submit in client mode)
#   executor          an executor pod; everything it needs comes in SPARK_* environment variables
#   anything else     run as given (a shell, spark-submit in client mode from a pod, python3 ...)
set -euo pipefail

# Spark asks for the user's name; pods may run with a uid that has no passwd entry.
if ! getent passwd "$(id -u)" >/dev/null && [ -w /etc/passwd ]; then
  echo "$(id -u):x:$(id -u):$(id -g):${SPARK_USER_NAME:-spark}:${SPARK_HOME}:/bin/false" >>/etc/passwd
fi

classpath="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}${SPARK_HOME}/jars/*"
[ -n "${SPARK_EXTRA_CLASSPATH:-}" ] && classpath="$classpath:$SPARK_EXTRA_CLASSPATH"

role="${1:-}"
case "$role" in
  driver)
    shift
    cmd=("$SPARK_HOME/bin/spark-submit" --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}"
         --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" --deploy-mode client "$@")
    ;;
  executor)
    shift
    # The JVM options Spark passes (module openings for Java 17+, extraJavaOptions), in their order.
    java_opts=()
    while IFS= read -r opt; do java_opts+=("$opt"); done < <(
      env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
    cmd=("${JAVA_HOME}/bin/java" "${java_opts[@]}" "-Xms${SPARK_EXECUTOR_MEMORY}" "-Xmx${SPARK_EXECUTOR_MEMORY}"
         -cp "$classpath${SPARK_DIST_CLASSPATH:+:$SPARK_DIST_CLASSPATH}"
         org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
         --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES"
         --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP"
         --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "${SPARK_EXECUTOR_POD_NAME:-$(hostname)}")
    ;;
  "")
    cmd=(bash)
    ;;
  *)
    cmd=("$@")
    ;;
esac
exec /usr/bin/tini -s -- "${cmd[@]}"
