// Shared declarations of the extension dynamodb_cache._native (python/src/): a thin binding of
// the C++ library; the Python modules in python/dynamodb_cache/ give it the 0.1.1 API.
#pragma once

#include <pybind11/pybind11.h>
#include <unistd.h>

#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "dynamodb_cache/backend.h"

namespace dynamodb_cache::python {

namespace py = pybind11;

// Releases the GIL for its scope, as py::gil_scoped_release, for calls that wait on the engine;
// unlike it, survives interpreter exit. A daemon thread that comes back while Python finalizes
// is parked forever (as Python 3.14 does) instead of being pthread_exit-ed from inside a
// noexcept destructor, which aborted the process ("terminate called without an active
// exception"). The destructor is noexcept(false) for the moment between the check and
// PyEval_RestoreThread: a finalization starting then ends the thread by forced unwinding, which
// pybind11 lets through. Not for use in a destructor.
class Unlocked {
 public:
  Unlocked() : state_(PyEval_SaveThread()) {}
  Unlocked(const Unlocked&) = delete;
  Unlocked& operator=(const Unlocked&) = delete;
  ~Unlocked() noexcept(false) {
    if (finalizing())
      for (;;) pause();
    PyEval_RestoreThread(state_);
  }

 private:
  static bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
  }
  PyThreadState* state_;
};

// What a Python object of class _native.Backend holds. The destructor drops the backend with
// the GIL released: destroying the last reference to a client completes its pending
// asynchronous operations, whose callbacks take the GIL.
struct PyBackend {
  std::shared_ptr<Backend> backend;
  ~PyBackend();
};

// Owns a Python object that threads without the GIL may hold (in a C++ callback or an
// exception_ptr): whichever thread drops it last takes the GIL to release it. At interpreter
// exit it is leaked rather than touched.
struct GilObject {
  py::object obj;
  explicit GilObject(py::object o) : obj(std::move(o)) {}
  GilObject(const GilObject&) = delete;
  GilObject& operator=(const GilObject&) = delete;
  ~GilObject() {
    if (!obj || !Py_IsInitialized()) {
      obj.release();
      return;
    }
    py::gil_scoped_acquire locked;
    obj = py::object();
  }
};

// A hit's bytes, or None; a list of them.
py::object hit_bytes(const std::optional<Hit>& h);
py::list hits_list(const std::vector<std::optional<Hit>>& hits);
// Seconds from Python (float, 0 = never) as a Ttl: InvalidArgumentError if negative, NaN or
// past kMaxTtl.
Ttl ttl_of(double seconds);
// The exception instance of dynamodb_cache.errors (or the Python exception itself, for one a
// user's callback raised) that `error` stands for. REQUIRES: the GIL.
py::object to_python_error(std::exception_ptr error);
// Registers the translator of C++ errors into dynamodb_cache.errors for every binding.
void register_errors(py::module_& m);
// Adds the *_async methods to the Backend class.
void bind_async(py::class_<PyBackend, std::shared_ptr<PyBackend>>& cls);

}  // namespace dynamodb_cache::python
