// The asynchronous methods of _native.Backend: each starts the C++ backend's asynchronous
// call and returns at once; the backend completes it on its client's I/O thread (a memory
// layer: inline), where `callback(error, result)` is called with the GIL taken. The Python
// side (dynamodb_cache/_aio.py) hands that on to its asyncio loop with call_soon_threadsafe,
// so no thread waits per request.
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dynamodb_cache/backend.h"
#include "native.h"

namespace dynamodb_cache::python {

namespace {

// The Done<T> that calls `cb(None, convert(value))` or `cb(error, None)` under the GIL. An
// exception the callback raises cannot reach anyone on an I/O thread: it is reported as
// unraisable (sys.unraisablehook), as asyncio does for callbacks.
template <class T, class Convert>
Backend::Done<T> deliver(py::function cb, Convert convert) {
  auto holder = std::make_shared<GilObject>(std::move(cb));
  return [holder, convert](Outcome<T> r) {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire locked;
    try {
      if (r.ok()) {
        if constexpr (std::is_void_v<T>) {
          (void)convert;  // nothing to convert (clang: -Wunused-lambda-capture)
          holder->obj(py::none(), py::none());
        } else {
          holder->obj(py::none(), convert(r.value()));
        }
      } else {
        holder->obj(to_python_error(r.error()), py::none());
      }
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("dynamodb_cache asynchronous callback");
    }
    holder->obj = py::object();
  };
}

const auto kNoResult = [](auto&&...) { return py::none(); };

}  // namespace

void bind_async(py::class_<PyBackend, std::shared_ptr<PyBackend>>& cls) {
  cls.def("get_async",
          [](PyBackend& self, std::string key, py::function cb) {
            auto done = deliver<std::optional<Hit>>(std::move(cb), hit_bytes);
            Unlocked unlocked;  // a full client (InFlightPolicy::kWait) blocks here
            self.backend->get_entry_async(std::move(key), std::move(done));
          })
      .def("set_async",
           [](PyBackend& self, std::string key, std::string value, double ttl, py::function cb) {
             const Ttl t = ttl_of(ttl);
             auto done = deliver<void>(std::move(cb), kNoResult);
             Unlocked unlocked;
             self.backend->set_async(std::move(key), std::move(value), t, std::move(done));
           })
      .def("delete_async",
           [](PyBackend& self, std::string key, py::function cb) {
             auto done = deliver<void>(std::move(cb), kNoResult);
             Unlocked unlocked;
             self.backend->erase_async(std::move(key), std::move(done));
           })
      .def("get_many_async",
           [](PyBackend& self, std::vector<std::string> keys, py::function cb) {
             auto done = deliver<std::vector<std::optional<Hit>>>(std::move(cb), hits_list);
             Unlocked unlocked;
             self.backend->get_many_async(std::move(keys), std::move(done));
           })
      .def("set_many_async",
           [](PyBackend& self, std::vector<std::pair<std::string, std::string>> entries, double ttl,
              py::function cb) {
             const Ttl t = ttl_of(ttl);
             auto done = deliver<void>(std::move(cb), kNoResult);
             Unlocked unlocked;
             self.backend->set_many_async(std::move(entries), t, std::move(done));
           })
      .def("clear_async", [](PyBackend& self, py::function cb) {
        auto done = deliver<void>(std::move(cb), kNoResult);
        Unlocked unlocked;
        self.backend->clear_async(std::move(done));
      });
}

}  // namespace dynamodb_cache::python
