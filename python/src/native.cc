// dynamodb_cache._native: the C++ library's backends, client and table for Python. Every call
// that waits on the network runs with the GIL released; Python callables (loaders) are called
// with it held. Values cross as bytes, TTLs as float seconds (0 = never).
#include "native.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dynamodb_cache/dynamodb_cache.h"
#include "dynamodb_cache/version.h"

namespace dynamodb_cache::python {

PyBackend::~PyBackend() {
  if (PyGILState_Check()) {
    py::gil_scoped_release unlocked;
    backend.reset();
  }
}

py::object hit_bytes(const std::optional<Hit>& h) { return h ? py::object(py::bytes(h->value)) : py::none(); }

py::list hits_list(const std::vector<std::optional<Hit>>& hits) {
  py::list out;
  for (const auto& h : hits) out.append(hit_bytes(h));
  return out;
}

Ttl ttl_of(double seconds) { return to_ttl(std::chrono::duration<double>(seconds)); }

namespace {

std::chrono::milliseconds ms_of(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) throw InvalidArgumentError("a duration must be 0 to 1e9 seconds");
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

py::object bytes_or_none(const std::optional<std::string>& v) {
  if (!v) return py::none();
  return py::bytes(*v);
}

using Client = std::shared_ptr<dynamodb::Client>;

Client make_client(const std::string& region, const std::string& endpoint, const std::string& profile,
                   int max_attempts, double operation_timeout, int io_threads, size_t max_in_flight,
                   bool fail_when_full) {
  dynamodb::ClientOptions o;
  o.region = region;
  o.endpoint = endpoint;
  o.profile.profile = profile;
  o.retry.max_attempts = max_attempts;
  o.operation_timeout = ms_of(operation_timeout);
  o.io_threads = io_threads;
  o.max_in_flight = max_in_flight;
  o.in_flight_policy = fail_when_full ? dynamodb::InFlightPolicy::kFail : dynamodb::InFlightPolicy::kWait;
  Unlocked unlocked;  // resolving credentials may read files or ask a service
  return std::make_shared<dynamodb::Client>(std::move(o));
}

// A Python exception on its way through C++ code that calls back into Python.
struct PythonRaised {
  std::shared_ptr<GilObject> error;
};

// Runs `call` (which releases the GIL) and raises again, with the GIL held, the Python exception
// a loader raised inside it: a py::error_already_set can be restored only once, and several
// threads waiting on one load may receive the same exception.
template <class F>
auto raising_python(F&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const PythonRaised& raised) {
    PyObject* exc = raised.error->obj.ptr();
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
    throw py::error_already_set();
  }
}

std::shared_ptr<PyBackend> wrap(std::shared_ptr<Backend> b) {
  auto p = std::make_shared<PyBackend>();
  p->backend = std::move(b);
  return p;
}

TableOptions table_options(const std::string& name, const std::string& billing_mode, int64_t rcu,
                           int64_t wcu) {
  TableOptions t;
  t.name = name;
  if (billing_mode == "PAY_PER_REQUEST")
    t.billing_mode = dynamodb::BillingMode::kPayPerRequest;
  else if (billing_mode == "PROVISIONED")
    t.billing_mode = dynamodb::BillingMode::kProvisioned;
  else
    throw InvalidArgumentError("billing_mode must be \"PAY_PER_REQUEST\" or \"PROVISIONED\"");
  t.read_capacity_units = rcu;
  t.write_capacity_units = wcu;
  return t;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "The C++ engine of dynamodb_cache (private: use the dynamodb_cache package).";
  m.attr("version") = DYNAMODB_CACHE_VERSION;
  register_errors(m);

  py::class_<dynamodb::Client, Client>(m, "Client")
      .def(py::init(&make_client), py::arg("region") = "", py::arg("endpoint") = "", py::arg("profile") = "",
           py::arg("max_attempts") = 0, py::arg("operation_timeout") = 30.0, py::arg("io_threads") = 1,
           py::arg("max_in_flight") = 4096, py::arg("fail_when_full") = false);

  m.def(
      "table_create",
      [](const Client& c, const std::string& name, const std::string& billing_mode, int64_t rcu, int64_t wcu,
         bool wait) {
        Table t(c, table_options(name, billing_mode, rcu, wcu));
        Unlocked unlocked;
        t.create(wait);
      },
      py::arg("client"), py::arg("name"), py::arg("billing_mode"), py::arg("rcu"), py::arg("wcu"),
      py::arg("wait"));
  m.def("table_exists", [](const Client& c, const std::string& name) {
    Table t(c, table_options(name, "PAY_PER_REQUEST", 5, 5));
    Unlocked unlocked;
    return t.exists();
  });
  m.def("table_drop", [](const Client& c, const std::string& name, bool wait) {
    Table t(c, table_options(name, "PAY_PER_REQUEST", 5, 5));
    Unlocked unlocked;
    t.drop(wait);
  });

  m.def(
      "memory_backend",
      [](size_t max_entries, size_t max_bytes, size_t shards) {
        MemoryOptions o;
        o.max_entries = max_entries;
        o.max_bytes = max_bytes;
        o.shards = shards;
        return wrap(std::make_shared<MemoryBackend>(o));
      },
      py::arg("max_entries") = MemoryOptions{}.max_entries, py::arg("max_bytes") = MemoryOptions{}.max_bytes,
      py::arg("shards") = MemoryOptions{}.shards);
  const DynamodbOptions d;
  m.def(
      "dynamodb_backend",
      [](const Client& c, const std::string& table, bool consistent_read, bool python_compat,
         size_t compress_min_bytes, int compress_level, const std::string& ns, double namespace_refresh,
         bool long_keys, bool fail_open, bool track_capacity, int clear_segments) {
        DynamodbOptions o;
        o.table = table;
        o.consistent_read = consistent_read;
        o.python_compat = python_compat;
        o.compress_min_bytes = compress_min_bytes;
        o.compress_level = compress_level;
        o.key_namespace = ns;
        o.namespace_refresh = ms_of(namespace_refresh);
        o.long_keys = long_keys;
        o.fail_open = fail_open;
        o.track_capacity = track_capacity;
        o.clear_segments = clear_segments;
        return wrap(std::make_shared<DynamodbBackend>(c, std::move(o)));
      },
      py::arg("client"), py::arg("table"), py::arg("consistent_read") = d.consistent_read,
      py::arg("python_compat") = d.python_compat, py::arg("compress_min_bytes") = d.compress_min_bytes,
      py::arg("compress_level") = d.compress_level, py::arg("namespace") = d.key_namespace,
      py::arg("namespace_refresh") = std::chrono::duration<double>(d.namespace_refresh).count(),
      py::arg("long_keys") = d.long_keys, py::arg("fail_open") = d.fail_open,
      py::arg("track_capacity") = d.track_capacity, py::arg("clear_segments") = d.clear_segments);
  m.def("layered_backend", [](const std::vector<std::shared_ptr<PyBackend>>& layers) {
    std::vector<std::shared_ptr<Backend>> bs;
    for (const auto& l : layers) {
      if (!l) throw InvalidArgumentError("a layer is None");
      bs.push_back(l->backend);
    }
    if (bs.empty()) throw InvalidArgumentError("a layered cache needs at least one layer");
    return wrap(std::make_shared<LayeredBackend>(std::move(bs)));
  });

  // A get_or_set loader's decision (get_or_set.h), in bytes: what Backend.get_or_set's
  // loader may return instead of bytes. TTLs in seconds (float, 0 = never expires).
  py::class_<Loaded>(m, "Loaded")
      .def_static(
          "found",
          [](const std::string& value, std::optional<double> ttl) {
            return Loaded::found(value, ttl ? std::optional<Ttl>(ttl_of(*ttl)) : std::nullopt);
          },
          py::arg("value"), py::arg("ttl") = py::none())
      .def_static("missing", &Loaded::missing)
      .def_static("uncached", [](const std::string& value) { return Loaded::uncached(value); },
                  py::arg("value"))
      .def_property_readonly("value", [](const Loaded& l) { return bytes_or_none(l.value); })
      .def_property_readonly("ttl",
                             [](const Loaded& l) -> std::optional<double> {
                               if (!l.ttl) return std::nullopt;
                               return std::chrono::duration<double>(*l.ttl).count();
                             })
      .def_property_readonly("cache", [](const Loaded& l) { return l.cache; });

  py::class_<PyBackend, std::shared_ptr<PyBackend>> cls(m, "Backend");
  cls.def("get",
          [](PyBackend& self, const std::string& key) {
            std::optional<std::string> v;
            {
              Unlocked unlocked;
              v = self.backend->get(key);
            }
            return bytes_or_none(v);
          })
      .def("set",
           [](PyBackend& self, const std::string& key, const std::string& value, double ttl) {
             const Ttl t = ttl_of(ttl);
             Unlocked unlocked;
             self.backend->set(key, value, t);
           })
      .def("delete",
           [](PyBackend& self, const std::string& key) {
             Unlocked unlocked;
             self.backend->erase(key);
           })
      .def("delete_many",
           [](PyBackend& self, const std::vector<std::string>& keys) {
             Unlocked unlocked;
             self.backend->erase_many(keys);
           })
      .def("clear",
           [](PyBackend& self) {
             // The erased count of a whole-table clear (0 for a namespace or memory).
             std::atomic<uint64_t> erased{0};
             Unlocked unlocked;
             self.backend->clear([&](uint64_t n) { erased.store(n, std::memory_order_relaxed); });
             return erased.load();
           })
      .def("get_many",
           [](PyBackend& self, const std::vector<std::string>& keys) {
             std::vector<std::optional<Hit>> hits;
             {
               Unlocked unlocked;
               hits = self.backend->get_many(keys);
             }
             return hits_list(hits);
           })
      .def("set_many",
           [](PyBackend& self, const std::vector<std::pair<std::string, std::string>>& entries, double ttl) {
             const Ttl t = ttl_of(ttl);
             Unlocked unlocked;
             self.backend->set_many(entries, t);
           })
      .def("contains",
           [](PyBackend& self, const std::string& key) {
             Unlocked unlocked;
             return self.backend->contains(key);
           })
      .def("touch",
           [](PyBackend& self, const std::string& key, double ttl) {
             const Ttl t = ttl_of(ttl);
             Unlocked unlocked;
             return self.backend->touch(key, t);
           })
      .def("add",
           [](PyBackend& self, const std::string& key, const std::string& value, double ttl) {
             const Ttl t = ttl_of(ttl);
             Unlocked unlocked;
             return self.backend->add(key, value, t);
           })
      .def("incr",
           [](PyBackend& self, const std::string& key, int64_t delta, double ttl) {
             const Ttl t = ttl_of(ttl);
             Unlocked unlocked;
             return self.backend->increment(key, delta, t);
           })
      .def(
          "get_or_set",
          [](PyBackend& self, const std::string& key, const py::function& loader, double ttl, double lease,
             double lease_wait, double refresh_ahead, double stale_if_error, double load_timeout,
             double cache_misses_for) {
            GetOrSetOptions o;
            o.lease = ttl_of(lease);
            o.lease_wait = ttl_of(lease_wait);
            o.refresh_ahead = ttl_of(refresh_ahead);
            o.stale_if_error = ttl_of(stale_if_error);
            o.load_timeout = ttl_of(load_timeout);
            o.cache_misses_for = ttl_of(cache_misses_for);
            const Ttl t = ttl_of(ttl);
            // The loader returns bytes (cached for `ttl`) or a Loaded (it decides). It runs with
            // the GIL held. What it raises is carried through the C++ single flight as a
            // PythonRaised (every caller waiting on the load gets it) and raised again here: a
            // py::error_already_set can be restored only once, and several threads may receive
            // the same exception. Owned by the load (not a reference to this frame's argument):
            // a refresh ahead of expiry, or a load past load_timeout, runs on after this call
            // has returned.
            auto fn = std::make_shared<GilObject>(loader);
            std::function<Loaded()> load = [fn]() -> Loaded {
              py::gil_scoped_acquire locked;
              py::object r;
              try {
                r = fn->obj();
              } catch (py::error_already_set& e) {
                throw PythonRaised{std::make_shared<GilObject>(e.value())};
              }
              if (py::isinstance<py::bytes>(r)) return Loaded::found(r.cast<std::string>());
              if (py::isinstance<Loaded>(r)) return r.cast<Loaded>();
              throw py::type_error(std::string("a get_or_set loader must return bytes or a Loaded, not ") +
                                   Py_TYPE(r.ptr())->tp_name);
            };
            // (value or None when the source has none, whether it is stale)
            std::optional<GetOrSetResult> r = raising_python([&] {
              Unlocked unlocked;
              return dynamodb_cache::get_or_set_entry(*self.backend, key, load, t, o);
            });
            if (!r) return py::make_tuple(py::none(), false);
            return py::make_tuple(py::bytes(r->value), r->stale);
          },
          py::arg("key"), py::arg("loader"), py::arg("ttl"), py::arg("lease") = 0.0,
          py::arg("lease_wait") = 10.0, py::arg("refresh_ahead") = 0.0, py::arg("stale_if_error") = 0.0,
          py::arg("load_timeout") = 0.0, py::arg("cache_misses_for") = 0.0)
      .def(
          "get_or_set_many",
          [](PyBackend& self, const std::vector<std::string>& keys, const py::function& loader, double ttl) {
            const Ttl t = ttl_of(ttl);
            // As get_or_set's loader: owned by the load, called with the GIL held; what it raises
            // reaches every caller waiting on one of its keys.
            auto fn = std::make_shared<GilObject>(loader);
            ManyLoader load = [fn](const std::vector<std::string>& missing) {
              py::gil_scoped_acquire locked;
              py::object r;
              try {
                r = fn->obj(missing);
              } catch (py::error_already_set& e) {
                throw PythonRaised{std::make_shared<GilObject>(e.value())};
              }
              std::vector<std::optional<std::string>> out;
              for (const auto& v : py::iter(r)) {
                if (v.is_none())
                  out.emplace_back();
                else if (py::isinstance<py::bytes>(v))
                  out.emplace_back(v.cast<std::string>());
                else
                  throw py::type_error("a get_or_set_many loader must return bytes or None for each key");
              }
              return out;
            };
            auto values = raising_python([&] {
              Unlocked unlocked;
              return dynamodb_cache::get_or_set_many(*self.backend, keys, load, t);
            });
            py::list out;
            for (const auto& v : values) out.append(bytes_or_none(v));
            return out;
          },
          py::arg("keys"), py::arg("loader"), py::arg("ttl"))
      .def("stats_json", [](PyBackend& self) { return self.backend->stats().to_json(); });
  bind_async(cls);
}

}  // namespace dynamodb_cache::python
