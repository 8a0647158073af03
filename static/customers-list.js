// Customer list: "select all on this page" for the bulk actions.
(function () {
  var all = document.getElementById("select-all");
  if (!all) { return; }
  var boxes = document.querySelectorAll("#customer-list .row-select");
  all.addEventListener("change", function () {
    boxes.forEach(function (box) { box.checked = all.checked; });
  });
})();
