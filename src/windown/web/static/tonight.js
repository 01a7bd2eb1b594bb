// Tonight: show only the part of the routine chooser that is in use; without this script all show.
(function () {
  "use strict";
  var radios = document.querySelectorAll('input[name="source"]');
  function update() {
    var chosen = document.querySelector('input[name="source"]:checked');
    var value = chosen ? chosen.value : "preset";
    document.querySelectorAll("[data-source]").forEach(function (part) {
      part.hidden = part.getAttribute("data-source") !== value;
    });
  }
  radios.forEach(function (r) { r.addEventListener("change", update); });
  update();
  var summary = document.getElementById("summary");
  if (summary) { summary.focus(); }
})();
