// A build's progress: ask the server every second; when the track is ready, open its player.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var words = document.getElementById("job-words");
  var bar = document.getElementById("job-progress");
  var error = document.getElementById("job-error");
  var failed = document.getElementById("job-failed");
  var done = document.getElementById("job-done");
  function say(status) {
    if (status.state === "queued") {
      return "Waiting its turn" + (status.position ? ": " + status.position + " build" +
        (status.position === 1 ? "" : "s") + " ahead." : ".");
    }
    // the percentage lives in the progress bar: the spoken status changes only with the stage
    if (status.state === "running") { return (status.stage_words || "Building") + "…"; }
    if (status.state === "done") { return "Ready."; }
    return "The build stopped.";
  }
  function poll() {
    fetch(url, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status); }
      return r.json();
    }).then(function (status) {
      var text = say(status);
      if (words.textContent.trim() !== text) { words.textContent = text; }
      bar.value = status.percent;
      bar.textContent = status.percent + "%";
      if (status.state === "done") {
        done.hidden = false;
        window.location.assign(status.track_url);
        return;
      }
      if (status.state === "failed") {
        error.textContent = status.error;
        error.hidden = false;
        failed.hidden = false;
        return;
      }
      window.setTimeout(poll, 1000);
    }).catch(function () { window.setTimeout(poll, 3000); });
  }
  var state = box.getAttribute("data-state");
  if (state === "queued" || state === "running") { window.setTimeout(poll, 500); }
})();
